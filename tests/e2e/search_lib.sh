# Sourced by the search_*.sh e2e tests, which CTest calls as
#   search_X.sh [MODE] HNAS MPIEXEC SOURCE_DIR
# (the script shifts MODE off first). Gives them a scratch directory, the mpiexec command
# line of a search, and the results checker.
set -euo pipefail
hnas="$1"; mpiexec="$2"; src="$3"
config="$src/inputs/ci/search_tiny.ini"
# Containers and CI run as root; Open MPI refuses that without both variables.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

source "$src/tests/e2e/scratch_lib.sh"
scratch search

# check COMMAND ARGS...: the results checker (system Python: it has h5py and numpy).
check() { /usr/bin/python3 "$src/tests/e2e/search_check.py" "$@"; }

# search_cmd NP ARGS...: sets the array `cmd` to the command line of a search on NP ranks.
search_cmd() {
  local np="$1"; shift
  cmd=("$mpiexec" -n "$np" --oversubscribe --allow-run-as-root "$hnas" search --config "$config" "$@")
}

# show LOG: a run's output without the effective-configuration listing (~100 lines).
show() { grep -v -E '^[0-9TZ:-]+ {3}' "$1" || true; }

# run NAME: runs `cmd` to the end; output in $work/NAME.log; exit code in `status`.
# A run that hangs is ended after 90 s (exit 124) so the test fails with its log.
run() {
  echo "== $1: ${cmd[*]}"
  status=0
  timeout --kill-after=10 90 "${cmd[@]}" >"$work/$1.log" 2>&1 || status=$?
  show "$work/$1.log"
  echo "== $1: exit $status"
}

# start NAME: starts `cmd` in the background (output in $work/NAME.log); its pid (that of
# mpiexec) in `mpirun_pid`.
start() {
  echo "== $1 (background): ${cmd[*]}"
  "${cmd[@]}" >"$work/$1.log" 2>&1 &
  mpirun_pid=$!
}

# finish NAME: waits up to 60 s for the search started by `start NAME` to end (else kills
# it, and its ranks: exit 137); exit code in `status`.
finish() {
  local deadline=$((SECONDS + 60))
  while kill -0 "$mpirun_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  if kill -0 "$mpirun_pid" 2>/dev/null; then
    echo "FAIL: the search did not end within 60 s; killing it"
    kill -9 "$mpirun_pid" $(pgrep -P "$mpirun_pid") 2>/dev/null || true
  fi
  status=0
  wait "$mpirun_pid" || status=$?
  show "$work/$1.log"
  echo "== $1: exit $status"
}

# expect_status CODE: fails the test unless the last run exited with CODE.
expect_status() {
  if [ "$status" -ne "$1" ]; then echo "FAIL: expected exit $1, got $status"; exit 1; fi
}
