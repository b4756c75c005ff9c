#!/usr/bin/env bash
# The PBS scripts as far as this machine allows, with no PBS server: every script passes
# bash -n; jobs/pbs/run.pbs runs the tiny pipeline at 2 MPI processes as PBS would start
# it (PBS_JOBID, PBS_NODEFILE, PBS_O_WORKDIR), with stand-in qstat and qsub that report a
# 40-second walltime and record the resubmission: each job stops before its walltime with
# exit 75 (the deadline that launch.sh derives from qstat), submits its successor with the
# same select, walltime and variables after itself (depend=afterany), and the successors
# complete the pipeline with the uninterrupted results bit for bit. submit_chain.sh chains
# the six stages with depend=afterok.
#   pbs_jobs.sh HNAS MAKE_SHARDS MPIEXEC SOURCE_DIR
set -euo pipefail
hnas="$1"; make_shards="$2"; mpiexec="$3"; src="$4"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
source "$src/tests/e2e/scratch_lib.sh"
scratch pbs-jobs
fail() { echo "FAIL: $*"; exit 1; }
check() { /usr/bin/python3 "$src/tests/e2e/run_check.py" "$@"; }

for script in "$src"/jobs/pbs/* "$src"/jobs/common/*.sh; do
  bash -n "$script" || fail "$script has a syntax error"
done
echo "ok: bash -n on $(ls "$src"/jobs/pbs | wc -l) PBS scripts and jobs/common"

text_shards "$make_shards" "$work/text" "$src"
# Ten times the tiny pre-training budget: long enough to need several 7-second jobs.
data=(--pretrain.data "$work/text_train_000000.bin" --pretrain.valid "$work/text_val_000000.bin"
      --pretrain.tokens=409600 --pretrain.checkpoint_every=50)
"$mpiexec" -n 2 --oversubscribe "$hnas" run --config "$src/inputs/ci/run_tiny.ini" --run-dir "$work/whole" \
  "${data[@]}" >"$work/whole.log" 2>&1 || fail "the uninterrupted pipeline failed"

# Stand-ins for the PBS client commands: qstat -f reports the job's resources; qsub
# records its arguments and answers with the next job id.
mkdir -p "$work/bin"
cat >"$work/bin/qstat" <<'QSTAT'
#!/bin/bash
echo "Job Id: $2"
echo "    Resource_List.select = 1:ncpus=2:mpiprocs=2"
echo "    Resource_List.walltime = 00:00:40"
echo "    resources_used.walltime = 00:00:00"
QSTAT
cat >"$work/bin/qsub" <<'QSUB'
#!/bin/bash
id=$(cat "$FAKE_PBS/next")
printf '%s\n' "$@" >"$FAKE_PBS/qsub.$id"
echo $((id + 1)) >"$FAKE_PBS/next"
echo "$id.fake"
QSUB
chmod +x "$work/bin/qstat" "$work/bin/qsub"
export FAKE_PBS="$work" PATH="$work/bin:$PATH"
echo 101 >"$work/next"
printf 'localhost\nlocalhost\n' >"$work/nodefile"

# run.pbs as PBS runs it, job after job, until hnas completes. A margin of 33 s before
# the 40-s walltime leaves each job about 7 s.
job=100 status=75 jobs=0
while [ "$status" = 75 ]; do
  jobs=$((jobs + 1))
  [ "$jobs" -le 8 ] || fail "the pipeline did not complete in 8 jobs"
  status=0
  (cd "$work" && env PBS_JOBID="$job.fake" PBS_NODEFILE="$work/nodefile" PBS_O_WORKDIR="$src" HNAS_ROOT="$src" \
     HNAS_BIN="$hnas" HNAS_LAUNCHER=mpirun HNAS_MPIRUN_ARGS="--oversubscribe -n 2" RUN_DIR="$work/pbs" \
     HNAS_ARGS="--config $src/inputs/ci/run_tiny.ini ${data[*]} --run.deadline_margin=33" \
     bash "$src/jobs/pbs/run.pbs") >>"$work/pbs.log" 2>&1 || status=$?
  echo "job $job.fake: exit $status"
  if [ "$status" = 75 ]; then
    next=$(($(cat "$work/next") - 1))
    submitted="$work/qsub.$next"
    [ -f "$submitted" ] || fail "job $job stopped resumably but submitted no successor"
    for expected in "select=1:ncpus=2:mpiprocs=2" "walltime=00:00:40" "depend=afterany:$job.fake" \
                    "RUN_DIR='$work/pbs'" "$src/jobs/pbs/run.pbs"; do
      grep -qF -- "$expected" "$submitted" || fail "the resubmission lacks $expected: $(tr '\n' ' ' <"$submitted")"
    done
    job=$next
  fi
done
[ "$status" = 0 ] || { tail -20 "$work/pbs.log"; fail "a PBS job exited $status"; }
[ "$jobs" -ge 2 ] || fail "the first job finished before its walltime: nothing was tested"
grep -q "hnas_launch: mpirun --oversubscribe -n 2 -x HNAS_EXIT_STATUS_FILE --hostfile $work/nodefile" "$work/pbs.log" \
  || fail "mpirun did not get PBS_NODEFILE"
grep -q "(--deadline @[0-9]*, in [0-9.]*s)" "$work/pbs.log" || fail "no deadline from the walltime in the log"
grep -q "are left before the deadline less its margin: stopping\|would not end before the deadline\|stopped by the deadline" \
  "$work/pbs.log" || fail "no job stopped for its deadline"
check complete "$work/pbs"
check same "$work/whole" "$work/pbs"
echo "ok: run.pbs completed the pipeline in $jobs jobs, every one but the last stopped before its walltime"

# The chain: six stage jobs, each after the one before succeeded.
rm -f "$work"/qsub.*
echo 200 >"$work/next"
chain=$("$src/jobs/pbs/submit_chain.sh" --qsub "-l select=1:ncpus=2:mpiprocs=2" "$work/chain" --config x.ini)
echo "$chain"
[ "$(wc -l <<<"$chain")" = 6 ] || fail "submit_chain.sh did not submit 6 stages"
grep -qF "STAGE=search," "$work/qsub.200" || fail "the first job is not the search"
! grep -q "depend" "$work/qsub.200" || fail "the first stage depends on something"
for n in 201 202 203 204 205; do
  grep -qF "depend=afterok:$((n - 1)).fake" "$work/qsub.$n" || fail "stage job $n does not wait for job $((n - 1))"
done
status=0
"$src/jobs/pbs/submit_chain.sh" "$work/chain" --mad.learning_rates=1e-3,3e-3 >"$work/comma.log" 2>&1 || status=$?
[ "$status" = 2 ] && grep -q "go in the INI file" "$work/comma.log" || fail "a comma in the options was not refused"
echo "ok: pbs"
