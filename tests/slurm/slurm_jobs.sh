#!/usr/bin/env bash
# The SLURM job scripts on a real one-node Slurm, for inputs/ci/run_tiny.ini at 2 tasks:
# 1. jobs/slurm/run.sbatch runs the whole pipeline to COMPLETED, every group of
#    results.h5 checked;
# 2. a second such job gets the pre-walltime USR1 (as --signal=B:USR1@N sends it) in the
#    middle of pre-training, requeues itself on exit 75, resumes and completes with the
#    first job's results bit for bit (nothing lost, nothing repeated), its log appended;
#    a 1-minute job without any signal stops before its end (the --deadline launch.sh
#    takes from squeue), requeues and completes with the uninterrupted results;
# 3. jobs/slurm/submit_chain.sh submits one stage.sbatch job per stage, chained by
#    afterok: the same results again; and a chain whose first stage fails cancels the
#    rest instead of leaving them pending.
# Skipped (exit 77) where the daemons cannot start.
#   slurm_jobs.sh HNAS MAKE_SHARDS SOURCE_DIR
set -euo pipefail
hnas="$1"; make_shards="$2"; src="$3"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
source "$src/tests/e2e/scratch_lib.sh"
source "$src/tests/slurm/slurm_lib.sh"
scratch slurm-jobs
fail() { echo "FAIL: $*"; for f in "$work"/*.out; do echo "== $f"; tail -n 15 "$f"; done; exit 1; }
check() { /usr/bin/python3 "$src/tests/e2e/run_check.py" "$@"; }
slurm_start
echo "slurm: node $(sinfo -h -o '%n %c CPUs %T')"

text_shards "$make_shards" "$work/text" "$src"
export HNAS_ROOT="$src" HNAS_BIN="$hnas"
submit() {  # submit NAME RUN_DIR: the pipeline job at 2 tasks; prints the job id
  sbatch --parsable -n 2 --job-name="$1" --chdir="$work" --output="$work/%x.out" \
    "$src/jobs/slurm/run.sbatch" "$work/$2" --config "$src/inputs/ci/run_tiny.ini" \
    --pretrain.data "$work/text_train_000000.bin" --pretrain.valid "$work/text_val_000000.bin"
}

# 1. The pipeline job, uninterrupted.
job=$(submit whole whole)
state=$(job_wait "$job" 300)
echo "== job $job (whole): $state, exit $(job_field "$job" ExitCode)"
[ "$state" = COMPLETED ] || fail "the pipeline job ended $state"
grep -q "hnas_launch: srun --mpi=pmix\|hnas_launch: mpirun" "$work/whole.out" || fail "no launch line"
check complete "$work/whole"

# 2. USR1 to the batch shell once pre-training has started: exit 75, requeue, resume.
job=$(submit stopped stopped)
for _ in $(seq 240); do
  grep -q "stage pretrain: starting" "$work/stopped.out" 2>/dev/null && break
  sleep 0.5
done
grep -q "stage pretrain: starting" "$work/stopped.out" || fail "pre-training did not start"
scancel --batch --signal=USR1 "$job"
state=$(job_wait "$job" 400)
echo "== job $job (stopped): $state, restarts $(job_field "$job" Restarts)"
[ "$state" = COMPLETED ] || fail "the stopped job ended $state"
[ "$(job_field "$job" Restarts)" -ge 1 ] || fail "the job was not requeued"
grep -q "requeueing job $job" "$work/stopped.out" || fail "no requeue line in the appended log"
grep -q "exit code 75" "$work/stopped.out" || fail "hnas did not stop resumably"
[ "$(grep -c "hnas_launch: " "$work/stopped.out")" -ge 2 ] || fail "the log was not appended across the requeue"
grep -q "search: complete in .*; skipped" "$work/stopped.out" || fail "the rerun did not skip the finished stages"
check complete "$work/stopped"
check same "$work/whole" "$work/stopped"

# 2b. No signal at all: a 1-minute job whose hnas stops 54 s before the end that squeue
# reports (launch.sh passes it as --deadline), requeues, and completes in later jobs with
# the same results as a job that never stopped (20 times the pre-training budget, for
# both, so that one minute does not suffice).
long=(--pretrain.tokens=819200 --pretrain.checkpoint_every=50)
job=$(sbatch --parsable -n 2 --job-name=long-whole --chdir="$work" --output="$work/%x.out" \
  "$src/jobs/slurm/run.sbatch" "$work/long-whole" --config "$src/inputs/ci/run_tiny.ini" \
  --pretrain.data "$work/text_train_000000.bin" --pretrain.valid "$work/text_val_000000.bin" "${long[@]}")
[ "$(job_wait "$job" 300)" = COMPLETED ] || fail "the long pipeline job did not complete"
job=$(sbatch --parsable -n 2 --time=1 --job-name=walltime --chdir="$work" --output="$work/%x.out" \
  "$src/jobs/slurm/run.sbatch" "$work/walltime" --config "$src/inputs/ci/run_tiny.ini" \
  --pretrain.data "$work/text_train_000000.bin" --pretrain.valid "$work/text_val_000000.bin" "${long[@]}" \
  --run.deadline_margin=54)
state=$(job_wait "$job" 400)
echo "== job $job (walltime): $state, restarts $(job_field "$job" Restarts)"
[ "$state" = COMPLETED ] || fail "the walltime job ended $state"
[ "$(job_field "$job" Restarts)" -ge 1 ] || fail "the walltime job was not requeued"
grep -q "(--deadline 20[0-9-]*T[0-9:]*, in " "$work/walltime.out" || fail "run.sbatch passed no deadline from squeue"
grep -q "before the deadline less its margin\|stopped by the deadline" "$work/walltime.out" \
  || fail "hnas did not stop for the deadline"
check same "$work/long-whole" "$work/walltime"

# 3. One job per stage, chained. The data keys go into the INI: every stage reads it.
sed "s|^\[pretrain\]|[pretrain]\ndata = $work/text_train_000000.bin\nvalid = $work/text_val_000000.bin|" \
  "$src/inputs/ci/run_tiny.ini" >"$work/tiny.ini"
chain=$("$src/jobs/slurm/submit_chain.sh" --sbatch "-n 2 --chdir=$work --output=$work/%x.out" "$work/chain" \
        --config "$work/tiny.ini")
echo "$chain"
[ "$(echo "$chain" | wc -l)" -eq 6 ] || fail "submit_chain.sh did not submit 6 stages"
for job in $(echo "$chain" | cut -d' ' -f2); do
  state=$(job_wait "$job" 300)
  [ "$state" = COMPLETED ] || fail "stage job $job ended $state"
done
check complete "$work/chain"
check same "$work/whole" "$work/chain"

# A chain whose first stage fails (no such configuration file): every dependant is
# cancelled, none waits forever.
chain=$("$src/jobs/slurm/submit_chain.sh" --sbatch "-n 1 --chdir=$work --output=$work/%x-bad.out" "$work/bad" \
        --config "$work/missing.ini")
first=$(echo "$chain" | head -n 1 | cut -d' ' -f2)
last=$(echo "$chain" | tail -n 1 | cut -d' ' -f2)
[ "$(job_wait "$first" 60)" = FAILED ] || fail "the failing stage did not end FAILED"
[ "$(job_wait "$last" 60)" = CANCELLED ] || fail "the dependants of a failed stage were not cancelled"
echo "slurm jobs: OK"
