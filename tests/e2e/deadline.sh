#!/usr/bin/env bash
# --deadline: hnas stops with exit 75 before the deadline when the next step, evaluation
# or checkpoint would not end in time, and the rerun resumes to the uninterrupted result:
# pre-training (bit for bit), a search at two ranks (the same objectives), the deadline
# taken from SLURM_JOB_END_TIME, and bad deadlines refused in one line.
#   deadline.sh HNAS MAKE_SHARDS MPIEXEC SOURCE_DIR
set -euo pipefail
hnas="$1"; make_shards="$2"; mpiexec="$3"; src="$4"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
source "$src/tests/e2e/scratch_lib.sh"
scratch deadline
fail() { echo "FAIL: $*"; exit 1; }
expect_log() { grep -qF -- "$2" "$work/$1.log" || fail "$1 output lacks: $2"; }
now() { date +%s.%N; }
# half SECONDS: the deadline for a run that took SECONDS uninterrupted, as Unix seconds
# from now: half of it, and at least 3 s (start-up included).
half() { /usr/bin/python3 -c "import sys, time; print('@%d' % (time.time() + max(3, float(sys.argv[1]) / 2) + 1))" "$1"; }

text_shards "$make_shards" "$work/text" "$src"
pretrain=(pretrain --arch AAMM AMAM --extrapolate.target=custom --extrapolate.blocks=2 --extrapolate.d_model=32
          --extrapolate.mlp_hidden=64 --extrapolate.heads=2 --extrapolate.kv_heads=1 --extrapolate.head_dim=16
          --extrapolate.vocab_size=257 --pretrain.data "$work/text_train_000000.bin"
          --pretrain.valid "$work/text_val_000000.bin" --pretrain.seq_len=32 --pretrain.global_batch=8
          --pretrain.micro_batch=2 --pretrain.tokens=163840 --pretrain.lr=3e-3 --pretrain.min_lr=3e-4
          --pretrain.warmup_fraction=0.1 --pretrain.eval_every=20 --pretrain.val_windows=16 --pretrain.log_every=100
          --pretrain.checkpoint_every=50 --pretrain.checkpoint_minutes=0 --pretrain.peak_tflops=0.05 --run.threads=1)

# Pre-training: the uninterrupted run, then one with a deadline at half its time.
start=$(now)
"$hnas" "${pretrain[@]}" --run-dir "$work/full" >"$work/full.log" 2>&1 || fail "the reference run failed"
took=$(/usr/bin/python3 -c "print($(now) - $start)")
deadline=$(half "$took")
status=0
"$hnas" "${pretrain[@]}" --run-dir "$work/cut" --deadline "$deadline" --run.deadline_margin=0.5 \
  >"$work/cut.log" 2>&1 || status=$?
ended=$(now)
grep -E "deadline|stopping|stopped" "$work/cut.log" || true
[ "$status" = 75 ] || fail "the run with a deadline exited $status, expected 75"
expect_log cut "are left before the deadline less its margin: stopping"
expect_log cut "checkpoint written. Rerun to resume (exit code 75)"
/usr/bin/python3 -c "import sys; sys.exit(0 if $ended < ${deadline#@} else 1)" \
  || fail "the run ended at $ended, after its deadline ${deadline#@}"
"$hnas" "${pretrain[@]}" --run-dir "$work/cut" >"$work/cut-resume.log" 2>&1 || fail "the resume failed"
expect_log cut-resume "resuming at step"
for model in AAMM AMAM; do
  /usr/bin/python3 "$src/tests/e2e/pretrain_check.py" same "$work/full" "$work/cut" "$model" 0
done
echo "ok: pre-training stopped $(/usr/bin/python3 -c "print('%.2f' % (${deadline#@} - $ended))") s before its deadline, resumed bit for bit"

# The deadline from SLURM_JOB_END_TIME when no --deadline is given (as inside a SLURM job).
status=0
SLURM_JOB_END_TIME=$(date -d "+3 seconds" +%s) "$hnas" "${pretrain[@]}" --run-dir "$work/slurm" \
  --run.deadline_margin=1 >"$work/slurm.log" 2>&1 || status=$?
[ "$status" = 75 ] || fail "the run in a SLURM job ending in 3 s exited $status, expected 75"
expect_log slurm "the SLURM job's end, SLURM_JOB_END_TIME"
# --deadline none overrides it.
SLURM_JOB_END_TIME=$(date -d "+1 seconds" +%s) "$hnas" "${pretrain[@]}" --run-dir "$work/slurm" --deadline none \
  >"$work/slurm-none.log" 2>&1 || fail "--deadline none did not override SLURM_JOB_END_TIME"
/usr/bin/python3 "$src/tests/e2e/pretrain_check.py" same "$work/full" "$work/slurm" AMAM 0

# A search at two ranks (two teams): no evaluation is started that would not end before
# the deadline, the running ones finish, the record says stopped; the rerun completes it.
search=(search --config "$src/inputs/ci/search_tiny.ini" --mad.epochs=16)
launch=("$mpiexec" -n 2 --oversubscribe --allow-run-as-root "$hnas")
start=$(now)
"${launch[@]}" "${search[@]}" --run-dir "$work/search-full" >"$work/search-full.log" 2>&1 \
  || fail "the reference search failed"
took=$(/usr/bin/python3 -c "print($(now) - $start)")
deadline=$(half "$took")
status=0
"${launch[@]}" "${search[@]}" --run-dir "$work/search-cut" --deadline "$deadline" --run.deadline_margin=1 \
  >"$work/search-cut.log" 2>&1 || status=$?
ended=$(now)
[ "$status" = 75 ] || fail "the search with a deadline exited $status, expected 75"
grep -qE "would not end before the deadline less its margin|the deadline less its margin has passed" \
  "$work/search-cut.log" || fail "the search did not stop for its deadline"
# hnas's own end, its last line (mpirun's teardown after it takes seconds on a loaded machine).
saved=$(grep -m1 "search stopped early; its state is saved" "$work/search-cut.log" | cut -c1-20)
[ -n "$saved" ] || fail "the search did not say its state was saved"
[ "$(date -u -d "${saved%Z}" +%s)" -lt "${deadline#@}" ] || fail "the search saved its state at $saved, after its deadline"
echo "ok: the search saved its state at $saved, before its deadline $(date -u -d "${deadline}" +%H:%M:%S), mpirun ended at $ended"
/usr/bin/python3 "$src/tests/e2e/search_check.py" interrupted "$work/search-cut" --status stopped --fewer-than 16
"${launch[@]}" "${search[@]}" --run-dir "$work/search-cut" >"$work/search-resume.log" 2>&1 \
  || fail "the search resume failed"
/usr/bin/python3 "$src/tests/e2e/search_check.py" complete "$work/search-cut" --rows 16 --exhaustive 4
/usr/bin/python3 "$src/tests/e2e/search_check.py" same-objectives "$work/search-full" "$work/search-cut" --tol 0

# Bad deadlines: one line, exit 2, naming the option.
bad() {
  local expected="$1"; shift
  local output status=0
  output=$("$hnas" "${pretrain[@]}" --run-dir "$work/bad" "$@" 2>&1) || status=$?
  [ "$status" = 2 ] || fail "$* exited $status, expected 2: $output"
  grep -qF -- "$expected" <<<"$output" || fail "$* said: $output (expected: $expected)"
  [ ! -e "$work/bad" ] || fail "$* left a run directory"
  echo "refused: $*: $(grep -F -- "$expected" <<<"$output" | head -1 | cut -c1-160)"
}
bad "--deadline = tomorrow is neither a time" --deadline tomorrow
bad "--deadline = 2020-01-01T00:00:00Z is already past" --deadline 2020-01-01T00:00:00Z
bad "--deadline = 10:00 is neither a time" --deadline 10:00
bad "--ranks plans a job of that size and is for --dry-run only" --ranks 4
echo "ok: deadline"
