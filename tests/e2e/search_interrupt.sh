#!/usr/bin/env bash
# search_interrupt.sh MODE HNAS MPIEXEC SOURCE_DIR: interrupts a 2-rank exhaustive search
# once results.h5 holds some rows, then reruns the same command, which must resume:
#   kill9       kill -9 mpirun and every rank (a node failure or a scheduler's hard kill)
#   usr1-mpirun SIGUSR1 to mpirun, which forwards it to the ranks: clean stop, exit 75
#   term-ranks  SIGTERM to the rank processes themselves (what a batch system's
#               signal-the-steps option does): clean stop, exit 75
#   term-rank0  SIGTERM to rank 0 alone: it relays the stop to the other teams
#   term-rank1  SIGTERM to the leader of team 1 alone: its stopped candidate tells rank 0,
#               which stops everyone
# MODE-teams-of-2: the same at 4 ranks in 2 teams of 2, whose ranks must agree on the
# step to stop at (each rank gets the signal at a slightly different time).
# (SIGTERM to mpirun itself is not a clean stop: mpirun forwards it, waits 1 s and
# SIGKILLs the ranks, and exits 1.)
# After the rerun: all 16 architectures once with ids 0..15, one propose and one observe
# event per candidate, and the evaluations already in the file kept, not run again.
mode="$1"; shift
source "$(dirname "$0")/search_lib.sh"

np=2; team=()
if [[ "$mode" == *-teams-of-2 ]]; then
  mode="${mode%-teams-of-2}"; np=4; team=(--search.ranks_per_candidate=2)
fi
dir="$work/run"
# 6 epochs: each candidate takes ~0.4 s, the search several seconds, time enough to
# interrupt it mid-way. results_overhead=1: results.h5 is rewritten after every result,
# so rows appear early however slow the machine.
search_cmd "$np" --run-dir "$dir" --mad.epochs=6 --search.results_overhead=1 ${team[@]+"${team[@]}"}

start first
# The ranks are mpirun's children: collect them now, before anything is killed.
check wait-rows "$dir" 2 --pid "$mpirun_pid" --timeout 60
ranks=$(pgrep -P "$mpirun_pid" | tr '\n' ' ')
echo "mpirun $mpirun_pid, ranks: $ranks"
if [ -z "$ranks" ]; then echo "FAIL: mpirun $mpirun_pid has no child processes"; exit 1; fi
case "$mode" in
  kill9) kill -9 "$mpirun_pid" $ranks ;;
  usr1-mpirun) kill -USR1 "$mpirun_pid" ;;
  term-ranks) kill -TERM $ranks ;;
  term-rank0 | term-rank1)
    signalled=""
    for p in $ranks; do
      if tr '\0' '\n' < "/proc/$p/environ" | grep -qx "OMPI_COMM_WORLD_RANK=${mode#term-rank}"; then
        kill -TERM "$p"; signalled=$p
      fi
    done
    if [ -z "$signalled" ]; then echo "FAIL: rank ${mode#term-rank} not found among $ranks"; exit 1; fi ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
finish first

case "$mode" in
  kill9)
    expect_status 137  # 128 + SIGKILL
    # No rank may survive its mpirun (pgrep -f: their command lines hold $dir).
    sleep 0.5
    if pgrep -f -- "$dir" >/dev/null; then echo "FAIL: processes of the killed run remain"; exit 1; fi
    check interrupted "$dir" --status running --fewer-than 16 ;;
  *)
    expect_status 75  # stopped early, resumable
    check interrupted "$dir" --status stopped --fewer-than 16 ;;
esac
mkdir "$work/before"
cp "$dir/results.h5" "$work/before/"

run rerun
expect_status 0
grep -q "search: resumed" "$work/rerun.log" || { echo "FAIL: the rerun did not say it resumed"; exit 1; }
check complete "$dir" --rows 16 --exhaustive 4 --teams 2 --all-completed
check kept "$work/before" "$dir"
echo "ok: resumed after $mode"
