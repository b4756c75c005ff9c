#!/usr/bin/env bash
# search_faults.sh HNAS MPIEXEC SOURCE_DIR: a candidate that diverges (debug.diverge_arch:
# trained at lr 1e30) and one whose evaluation throws (debug.fail_arch) are recorded with
# their status and the search goes on to finish the other 14.
source "$(dirname "$0")/search_lib.sh"

search_cmd 2 --run-dir "$work/run" --debug.diverge_arch=AAMA --debug.fail_arch=MMMM
run faults
expect_status 0
check complete "$work/run" --rows 16 --exhaustive 4 --teams 2
check faults "$work/run" --diverged AAMA --failed MMMM
echo "ok: faulty candidates recorded, search completed"
