#!/usr/bin/env bash
# search_exhaustive.sh HNAS MPIEXEC SOURCE_DIR: the 16 architectures of {A,M}^4 at 2 ranks
# (2 teams of 1) and at 4 ranks (2 teams of 2, data-parallel). Both must evaluate each
# architecture once with both teams busy, and agree on every objective: a team of 2
# trains on the same global batch, so only the order of float reductions differs.
source "$(dirname "$0")/search_lib.sh"

search_cmd 2 --run-dir "$work/teams_of_1"
run teams_of_1
expect_status 0
check complete "$work/teams_of_1" --rows 16 --exhaustive 4 --teams 2 --all-completed

search_cmd 4 --run-dir "$work/teams_of_2" --search.ranks_per_candidate=2
run teams_of_2
expect_status 0
check complete "$work/teams_of_2" --rows 16 --exhaustive 4 --teams 2 --all-completed

check same-objectives "$work/teams_of_1" "$work/teams_of_2" --tol 1e-4
echo "ok: exhaustive search at 2 and 4 ranks"
