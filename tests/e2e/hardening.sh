#!/usr/bin/env bash
# hardening.sh CASE HNAS MPIEXEC SOURCE_DIR: what a new user gets wrong, and what a batch
# system does to a job, each answered with exit code 2 (or 75 for a stop), one line
# naming the culprit, and the run directory left as it was.
#   no-command       `hnas` alone: usage, exit 2
#   damaged-results  a truncated results.h5, a directory in its place, a foreign HDF5 file
#   readonly-dir     a run directory that cannot be written
#   second-job       a second job on a run directory a live job holds
#   changed-data     resuming a token search whose shards changed
#   stalled-rank     a rank stopped (SIGSTOP) mid-search, with run.stall_timeout set
#   evaluate-signal  SIGTERM to `hnas evaluate` mid-training: exit 75
#   fifo-input       a FIFO as token shard or configuration: refused at once, never blocks
#   evaluate-mpi     `mpirun -np 2 hnas evaluate`: one evaluation, data-parallel
#   too-large        a model and batch that cannot fit in memory: refused with the numbers
#   older-record     a run directory written by the previous hnas (its configuration text
#                    without newer keys, values as typed, no data fingerprint) still resumes
case_name="$1"; shift
source "$(dirname "$0")/search_lib.sh"
make_shards="$(dirname "$hnas")/../../tools/hnas_make_shards"

# expect_refusal NAME TEXT: the last run exited 2 with exactly one error line containing TEXT.
expect_refusal() {
  expect_status 2
  local errors
  errors=$(grep -c "error:" "$work/$1.log" || true)
  if [ "$errors" -ne 1 ]; then echo "FAIL: $errors error lines, expected 1"; exit 1; fi
  if ! grep "error:" "$work/$1.log" | grep -qF -- "$2"; then echo "FAIL: the error lacks: $2"; exit 1; fi
  if grep -q "H5F\.c\|HDF5 error stack\|lock" "$work/$1.log" && [[ "$2" != *lock* ]] && [[ "$2" != *"in use"* ]]; then
    echo "FAIL: the message shows HDF5 internals or a locking hint"; exit 1
  fi
  echo "ok: $1: exit 2, one line naming: $2"
}

# A complete 1-rank search to damage or resume (16 candidates, seconds).
complete_search() {
  search_cmd 1 --run-dir "$1" "${@:2}"
  run "complete_$(basename "$1")"
  expect_status 0
}

case "$case_name" in
no-command)
  status=0
  "$hnas" >"$work/none.log" 2>&1 || status=$?
  expect_status 2
  grep -q "usage: hnas <command>" "$work/none.log" || { echo "FAIL: no usage text"; exit 1; }
  echo "ok: no command: usage, exit 2"
  ;;

damaged-results)
  dir="$work/truncated"
  complete_search "$dir"
  size=$(stat -c %s "$dir/results.h5")
  truncate -s $((size / 2)) "$dir/results.h5"
  before=$(md5sum <"$dir/results.h5")
  search_cmd 2 --run-dir "$dir"; run truncated
  expect_refusal truncated "results.h5 is damaged (truncated or not an HDF5 file); move it away or use a new --run-dir"
  [ "$(md5sum <"$dir/results.h5")" = "$before" ] || { echo "FAIL: the damaged file was changed"; exit 1; }

  mkdir -p "$work/directory/results.h5"
  search_cmd 2 --run-dir "$work/directory"; run directory
  expect_refusal directory "results.h5 is a directory, not a results file"

  mkdir -p "$work/foreign"
  /usr/bin/python3 -c "import h5py; h5py.File('$work/foreign/results.h5', 'w').create_group('foo')"
  search_cmd 2 --run-dir "$work/foreign"; run foreign
  expect_refusal foreign "is an HDF5 file but not an hnas results file (no /search group)"
  ;;

readonly-dir)
  search_cmd 2 --run-dir /proc/hnas-run; run proc
  expect_refusal proc "/proc/hnas-run"
  touch "$work/a_file"
  search_cmd 2 --run-dir "$work/a_file"; run a_file
  expect_refusal a_file "is not a directory"
  ;;

second-job)
  dir="$work/shared"
  # Long candidates: the first job is still running when the second one starts.
  search_cmd 2 --run-dir "$dir" --mad.epochs=40 --search.results_overhead=1
  start first
  first_pid=$mpirun_pid
  check wait-rows "$dir" 1 --pid "$first_pid" --timeout 60
  search_cmd 2 --run-dir "$dir" --mad.epochs=40 --search.results_overhead=1; run second
  expect_refusal second "is in use by another hnas job (host $(hostname)"
  grep "error:" "$work/second.log" | grep -qE "pid [0-9]+" || { echo "FAIL: the holder's pid is not named"; exit 1; }
  kill -USR1 "$first_pid"
  mpirun_pid=$first_pid; finish first
  expect_status 75  # the first job was never disturbed: it stops cleanly when asked
  if grep -q "error:" "$work/first.log"; then echo "FAIL: the first job reported an error"; exit 1; fi
  ls "$dir" | grep -q "\.tmp" && { echo "FAIL: a temporary file was left"; exit 1; }
  echo "ok: the live job kept its run directory"
  ;;

changed-data)
  mkdir -p "$work/data"
  head -c 200000 /dev/urandom | base64 >"$work/corpus.txt"
  "$make_shards" --output-prefix "$work/data/text" "$work/corpus.txt" >/dev/null
  shard="$work/data/text_train_000000.bin"
  tokens=(--data "$shard" --tokens.valid "$work/data/text_val_000000.bin" --tokens.steps=2 --tokens.seq_len=32
          --tokens.batch_size=4 --tokens.val_windows=2 --tokens.eval_every=0 --search.max_evaluations=2
          --search.strategy=random)
  dir="$work/tokens"
  complete_search "$dir" "${tokens[@]}"
  before=$(md5sum <"$dir/results.h5")
  head -c 200000 /dev/urandom | base64 >"$work/corpus.txt"  # same size, other text
  "$make_shards" --output-prefix "$work/data/text" "$work/corpus.txt" >/dev/null
  search_cmd 1 --run-dir "$dir" "${tokens[@]}"; run changed_data
  expect_refusal changed_data "holds a search on other input data (shard 1 (text_train_000000.bin) has other contents)"
  [ "$(md5sum <"$dir/results.h5")" = "$before" ] || { echo "FAIL: the record was changed"; exit 1; }
  ;;

stalled-rank)
  dir="$work/stall"
  # Teams of 2: the ranks meet in a collective at every step; rank 1 stops answering.
  search_cmd 2 --run-dir "$dir" --mad.epochs=40 --search.ranks_per_candidate=2 --run.stall_timeout=3 \
    --search.results_overhead=1
  start stalled
  check wait-rows "$dir" 1 --pid "$mpirun_pid" --timeout 60
  # World rank 1, found by the rank Open MPI gave it (pgrep's order is the pids').
  rank1=""
  for pid in $(pgrep -P "$mpirun_pid"); do
    tr '\0' '\n' <"/proc/$pid/environ" | grep -qx "OMPI_COMM_WORLD_RANK=1" && rank1=$pid
  done
  [ -n "$rank1" ] || { echo "FAIL: world rank 1 not found"; exit 1; }
  kill -STOP "$rank1"
  stopped_at=$SECONDS
  finish stalled
  kill -CONT "$rank1" 2>/dev/null || true
  if [ "$status" -eq 0 ] || [ "$status" -eq 75 ]; then echo "FAIL: exit $status after a stalled rank"; exit 1; fi
  waited=$((SECONDS - stopped_at))
  if [ "$waited" -gt 40 ]; then echo "FAIL: the job took $waited s to end"; exit 1; fi
  grep -q "rank 0: no progress for 3 s" "$work/stalled.log" || { echo "FAIL: no message naming the rank"; exit 1; }
  echo "ok: a stalled rank ended the job after $waited s, naming rank 0's wait"
  ;;

evaluate-signal)
  "$hnas" evaluate --config "$src/inputs/quickstart.ini" --mad.epochs=200 --train.log_every=1 --run.threads=1 \
    >"$work/eval.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do grep -q " step " "$work/eval.log" && break; sleep 0.1; done
  kill -TERM "$pid"
  status=0
  timeout 30 tail --pid="$pid" -f /dev/null || true
  wait "$pid" || status=$?
  expect_status 75
  grep -q "stopped by a signal" "$work/eval.log" || { echo "FAIL: no stop line"; exit 1; }
  echo "ok: SIGTERM stops hnas evaluate at a step boundary with exit 75"
  ;;

fifo-input)
  mkfifo "$work/shard.bin" "$work/config.ini"
  status=0
  timeout 20 "$hnas" evaluate --arch AM --data "$work/shard.bin" >"$work/fifo_shard.log" 2>&1 || status=$?
  expect_refusal fifo_shard "shard.bin is a FIFO"
  status=0
  timeout 20 "$hnas" evaluate --arch AM --config "$work/config.ini" >"$work/fifo_config.log" 2>&1 || status=$?
  expect_refusal fifo_config "config.ini is a FIFO"
  ;;

evaluate-mpi)
  cmd=("$mpiexec" -n 2 --oversubscribe --allow-run-as-root "$hnas" evaluate --config "$src/inputs/quickstart.ini"
       --mad.epochs=1 --run.threads=1)
  run evaluate_mpi
  expect_status 0
  lines=$(grep -c "objective [0-9.]* (mean over 1 tasks)" "$work/evaluate_mpi.log" || true)
  [ "$lines" -eq 1 ] || { echo "FAIL: $lines result lines (an evaluation per rank?)"; exit 1; }
  grep -q "2 ranks, 1 threads per rank" "$work/evaluate_mpi.log" || { echo "FAIL: not data-parallel"; exit 1; }
  echo "ok: one evaluation over 2 ranks"
  ;;

too-large)
  huge=(--model.d_model=8192 --model.heads=64 --model.kv_heads=64 --model.head_dim=128 --model.mlp_hidden=0)
  status=0
  timeout 60 "$hnas" evaluate --arch A4M4 --config "$src/inputs/quickstart.ini" "${huge[@]}" \
    >"$work/too_large.log" 2>&1 || status=$?
  expect_refusal too_large "per rank, but"
  grep "error:" "$work/too_large.log" | grep -q "lower mad.batch_size" || { echo "FAIL: no key to change"; exit 1; }
  grep "error:" "$work/too_large.log" | grep -qE "parameters [0-9.]+ GiB" || { echo "FAIL: no numbers"; exit 1; }
  search_cmd 2 --run-dir "$work/too_large_search" "${huge[@]}"; run too_large_search
  expect_refusal too_large_search "per rank, but"
  [ ! -e "$work/too_large_search/results.h5" ] || { echo "FAIL: a results.h5 was written"; exit 1; }
  ;;

older-record)
  dir="$work/older"
  search_cmd 1 --run-dir "$dir" --search.max_evaluations=16
  run first; expect_status 0
  # What the previous hnas recorded: no arch line in a search, lists as the user typed
  # them, no [run] stall_timeout, and a status that lets the rerun resume.
  /usr/bin/python3 - "$dir/results.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    text = f["/provenance/config"].asstr()[()]
    lines = [l for l in text.splitlines() if not l.startswith("arch =") and not l.startswith("stall_timeout")]
    text = "\n".join(l.replace("learning_rates = 0.003", "learning_rates = 3e-3") for l in lines) + "\n"
    del f["/provenance/config"]
    f["/provenance/config"] = text
    f["/search"].attrs["status"] = "stopped"
PY
  search_cmd 1 --run-dir "$dir" --search.max_evaluations=16; run resumed
  expect_status 0
  check complete "$dir" --rows 16
  echo "ok: a record of the previous format resumes"
  ;;

*) echo "unknown case $case_name"; exit 2 ;;
esac
