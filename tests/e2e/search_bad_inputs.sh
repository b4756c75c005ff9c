#!/usr/bin/env bash
# search_bad_inputs.sh HNAS MPIEXEC SOURCE_DIR: bad input to a 4-rank search ends the job
# with exit 2 within seconds (no hang, no training), one message from rank 0 only that
# names the problem, and no results.h5 where the run never started.
source "$(dirname "$0")/search_lib.sh"

# expect_error NAME TEXT ARGS...: a 4-rank search with ARGS must exit 2 within 45 s (slow only on an overloaded machine) and
# print exactly one error line, which contains TEXT.
expect_error() {
  local name="$1" text="$2"; shift 2
  search_cmd 4 "$@"
  local start=$SECONDS
  run "$name"
  expect_status 2
  local seconds=$((SECONDS - start))
  if [ "$seconds" -gt 45 ]; then echo "FAIL: took $seconds s to fail"; exit 1; fi
  local errors
  errors=$(grep -c "error:" "$work/$name.log" || true)
  if [ "$errors" -ne 1 ]; then echo "FAIL: $errors error lines, expected 1 (rank 0 only)"; exit 1; fi
  if ! grep "error:" "$work/$name.log" | grep -qF -- "$text"; then echo "FAIL: the error lacks: $text"; exit 1; fi
  echo "ok: $name: exit 2 after ${seconds} s, one message naming $text"
}

# Teams of 3 cannot tile 4 ranks: refused before the run directory is even created.
expect_error team_size "search.ranks_per_candidate" --run-dir "$work/team_size" --search.ranks_per_candidate=3
if [ -e "$work/team_size" ]; then echo "FAIL: the run directory was created"; exit 1; fi

# A token shard that is not there: every rank checks, one reports.
expect_error missing_shard "/nonexistent.bin" --run-dir "$work/missing_shard" --data /nonexistent.bin
if [ -e "$work/missing_shard" ]; then echo "FAIL: the run directory was created"; exit 1; fi

# A misspelt key is refused by every rank's parser; only rank 0 prints it.
expect_error unknown_key "search.seeed" --run-dir "$work/unknown_key" --search.seeed=5
if [ -e "$work/unknown_key" ]; then echo "FAIL: the run directory was created"; exit 1; fi

# Resuming with another configuration is refused and names the key that differs (the
# search to resume ran at 2 ranks: the world size may change between jobs).
search_cmd 2 --run-dir "$work/mismatch"
run original
expect_status 0
expect_error mismatch "seed = 5" --run-dir "$work/mismatch" --search.seed=5
check complete "$work/mismatch" --rows 16  # the refused run left the record alone
echo "ok: bad inputs exit 2 with one message"
