#!/usr/bin/env bash
# search_resume_reproducible.sh STRATEGY HNAS MPIEXEC SOURCE_DIR: one team (1 rank), a
# seeded STRATEGY (bo or random) with budget 10 over the 2^6 architectures of 6 layers,
# run twice: straight through, and stopped by SIGUSR1 after 4 results then resumed.
# Resuming replays the event log, so both runs must make the same proposals in the same
# order under the same ids (an in-flight candidate is run again, not proposed again) and,
# training being deterministic on one rank, reach the same objectives.
strategy="$1"; shift
source "$(dirname "$0")/search_lib.sh"

# bo_initial=3: BO's model proposes from the 4th candidate on, so the stop falls after the
# model's first proposals and the replay must rebuild it. results_overhead=1: results.h5
# after every result, so the stop can be timed by its rows.
args=(--search.strategy="$strategy" --search.num_layers=6 --search.max_evaluations=10 --search.seed=7
      --search.bo_initial=3 --mad.epochs=3 --search.results_overhead=1)

search_cmd 1 --run-dir "$work/straight" "${args[@]}"
run straight
expect_status 0
check complete "$work/straight" --rows 10

search_cmd 1 --run-dir "$work/resumed" "${args[@]}"
start stopped
check wait-rows "$work/resumed" 4 --pid "$mpirun_pid" --timeout 60
kill -USR1 "$mpirun_pid"
finish stopped
expect_status 75
check interrupted "$work/resumed" --status stopped --fewer-than 10

run resume
expect_status 0
check complete "$work/resumed" --rows 10
check same-proposals "$work/straight" "$work/resumed"
echo "ok: $strategy search resumed reproducibly"
