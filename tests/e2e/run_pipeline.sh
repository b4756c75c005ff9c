#!/usr/bin/env bash
# hnas run, the whole pipeline at two ranks on inputs/ci/run_tiny.ini: every group of
# results.h5 checked; a rerun skips every stage; a run stopped by SIGTERM in each stage
# in turn, and one killed with kill -9 in each stage in turn, end (rerun after rerun)
# with the uninterrupted results bit for bit, each rerun skipping the stages finished
# before; the five stage commands run one by one give the same results, and hnas run
# then skips them all; bad inputs are one line, exit 2.
#   run_pipeline.sh HNAS MAKE_SHARDS MPIEXEC SOURCE_DIR
set -euo pipefail
hnas="$1"; make_shards="$2"; mpiexec="$3"; src="$4"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
source "$src/tests/e2e/scratch_lib.sh"
scratch run
check() { /usr/bin/python3 "$src/tests/e2e/run_check.py" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
show() { grep -v -E '^[0-9TZ:-]+ {3}' "$1" | tail -n "${2:-8}" || true; }

text_shards "$make_shards" "$work/text" "$src"
args=(--config "$src/inputs/ci/run_tiny.ini" --pretrain.data "$work/text_train_000000.bin"
      --pretrain.valid "$work/text_val_000000.bin")
launch=("$mpiexec" -n 2 --oversubscribe --allow-run-as-root)

# run NAME DIR [ARGS...]: hnas run at two ranks to its end; exit code in `status`.
run() {
  local name="$1" dir="$2"; shift 2
  status=0
  timeout --kill-after=10 120 "${launch[@]}" "$hnas" run "${args[@]}" --run-dir "$dir" "$@" \
    >"$work/$name.log" 2>&1 || status=$?
  show "$work/$name.log"
  echo "== $name: exit $status"
}
expect() { if [ "$status" -ne "$1" ]; then fail "expected exit $1, got $status"; fi; }
expect_log() { grep -qF -- "$2" "$work/$1.log" || fail "$1 output lacks: $2"; }

# interrupt NAME DIR STAGE SIGNAL: starts hnas run on DIR and, once STAGE has started,
# sends SIGNAL to the ranks (as a batch system does at a time limit; KILL goes to mpirun
# too). A stage without training steps (extrapolate, inference) runs to its end, and the
# job stops before the next stage; one that a deferred stop let finish is found skipped,
# and the signal lands in the stage after it.
interrupt() {
  local name="$1" dir="$2" stage="$3" signal="$4"
  "${launch[@]}" "$hnas" run "${args[@]}" --run-dir "$dir" >"$work/$name.log" 2>&1 &
  local pid=$!
  local reached="stage $stage: starting|$stage: complete in"
  for _ in $(seq 1500); do
    grep -qE "$reached" "$work/$name.log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
  done
  grep -qE "$reached" "$work/$name.log" || { show "$work/$name.log" 30; fail "$name: $stage never reached"; }
  local ranks
  ranks=$(pgrep -P "$pid" || true)
  if [ "$signal" = KILL ]; then kill -9 "$pid" $ranks 2>/dev/null || true; else kill -"$signal" $ranks; fi
  status=0; wait "$pid" || status=$?
  show "$work/$name.log" 4
  echo "== $name: exit $status after SIG$signal in $stage"
}

stages=(search aggregate extrapolate pretrain inference)

# The reference, uninterrupted; its rerun skips every stage and shows the summary again.
run ref "$work/ref"
expect 0
expect_log ref "stage summary: starting"
expect_log ref "winner vs baseline: validation loss"
check complete "$work/ref"
run ref-rerun "$work/ref"
expect 0
for stage in "${stages[@]}"; do expect_log ref-rerun "$stage: complete in $work/ref; skipped"; done
expect_log ref-rerun "summary ($work/ref/results.h5:/summary):"

# SIGTERM in each stage in turn: every run exits 75. Run i finishes stage i-1 (stopped in
# it by run i-1) and skips the stages before.
for i in "${!stages[@]}"; do
  interrupt "term-$i" "$work/term" "${stages[$i]}" TERM
  # A signal after the last stop check (inference takes milliseconds) finds the work done:
  # exit 0 with the summary is right then.
  if [ "${stages[$i]}" = inference ] && [ "$status" -eq 0 ]; then expect_log "term-$i" "winner vs baseline"; else expect 75; fi
  for ((j = 0; j + 1 < i; ++j)); do expect_log "term-$i" "${stages[$j]}: complete in $work/term; skipped"; done
done
run term-end "$work/term"
expect 0
check complete "$work/term"
check same "$work/ref" "$work/term"

# kill -9 in each stage in turn: nothing is lost but the work since the last durable
# point; the stages finished before are skipped on the rerun.
for i in "${!stages[@]}"; do
  interrupt "kill-$i" "$work/kill" "${stages[$i]}" KILL
  for ((j = 0; j + 1 < i; ++j)); do expect_log "kill-$i" "${stages[$j]}: complete in $work/kill; skipped"; done
done
run kill-end "$work/kill"
expect 0
for stage in search aggregate extrapolate; do expect_log kill-end "$stage: complete in $work/kill; skipped"; done
check complete "$work/kill"
check same "$work/ref" "$work/kill"

# The stage commands one by one, on the same configuration: the same results, and hnas
# run finds every stage complete (each stage recorded only its own keys).
split="$work/split"
one() {
  local name="$1"; shift
  status=0
  timeout --kill-after=10 120 "${launch[@]}" "$hnas" "$@" >"$work/$name.log" 2>&1 || status=$?
  show "$work/$name.log" 3
  expect 0
}
config=(--config "$src/inputs/ci/run_tiny.ini" --run-dir "$split")
one split-search search "${config[@]}"
one split-aggregate aggregate "${config[@]}"
one split-extrapolate extrapolate "${config[@]}"
one split-pretrain pretrain "${args[@]}" --run-dir "$split"
one split-generate generate "${config[@]}" --prompt "The history of the English language begins with the arrival of "
run split-run "$split"
expect 0
for stage in "${stages[@]}"; do expect_log split-run "$stage: complete in $split; skipped"; done
check same "$work/ref" "$split"

# A changed pre-training key on a finished run: the earlier stages are still skipped, and
# pre-training refuses checkpoints of another schedule (a new --run-dir trains again).
run changed "$work/ref" --pretrain.lr=2e-3
expect 2
expect_log changed "extrapolate: complete in $work/ref; skipped"
expect_log changed "rerun with the same configuration to resume, or use a new --run-dir"

# Bad inputs: one line naming the problem, exit 2, no run directory left behind.
bad() {
  local expected="$1"; shift
  status=0
  "$hnas" run "$@" >"$work/bad.log" 2>&1 || status=$?
  expect 2
  expect_log bad "$expected"
}
bad "hnas run chooses the architectures" "${args[@]}" --run-dir "$work/bad1" --arch AMAM
bad "--run-dir is required" "${args[@]}"
bad "generate.checkpoint" "${args[@]}" --run-dir "$work/bad2" --generate.checkpoint x.h5
bad "pretrain.data is required" --config "$src/inputs/ci/run_tiny.ini" --run-dir "$work/bad3"
bad "unrecognised option" "${args[@]}" --run-dir "$work/bad4" --pretrain.lrr=1
for d in bad1 bad2 bad3 bad4; do if [ -e "$work/$d" ]; then fail "a refused run left $work/$d behind"; fi; done
# A dry run plans the search and writes nothing.
status=0
"$hnas" run "${args[@]}" --run-dir "$work/dry" --dry-run >"$work/dry.log" 2>&1 || status=$?
expect 0
if [ -e "$work/dry" ]; then fail "a dry run created its run directory"; fi
echo "run_pipeline: all checks passed"
