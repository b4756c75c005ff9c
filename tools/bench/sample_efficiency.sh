#!/usr/bin/env bash
# Sample efficiency of BO against random search on a real, fully tabulated space:
#   1. evaluates all 256 candidates of {A,M}^8 once (tools/bench/sample_efficiency.ini,
#      an exhaustive `hnas search` at 2 ranks, a few minutes); a run directory that
#      already holds the completed search is reused (hnas skips it);
#   2. sample_efficiency_bench replays BO and random search over that table for many
#      seeds, without training, and prints the evaluations each needs to reach the best
#      candidate and the top 5%.
# Prints figures only; asserts nothing.
#
#   flock /tmp/hnas-build.lock tools/bench/sample_efficiency.sh [--run-dir DIR] [--np 2]
#                                                               [-- sample_efficiency_bench options]
# e.g. `-- --seeds 40 --concurrent 2` (see sample_efficiency.cpp). Build the hnas and
# sample_efficiency_bench targets first.
set -euo pipefail

source_dir=$(cd "$(dirname "$0")/../.." && pwd)
build=$source_dir/build
run_dir=$build/bench/sample_efficiency  # kept between runs: step 1 is the expensive one
ranks=2
while [[ $# -gt 0 ]]; do
  case $1 in
    --run-dir) run_dir=$2; shift 2 ;;
    --np) ranks=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [--run-dir DIR] [--np N] [--build DIR] [-- bench options]" >&2; exit 2 ;;
  esac
done
hnas=$build/src/app/hnas
bench=$build/tools/bench/sample_efficiency_bench
for exe in "$hnas" "$bench"; do
  [[ -x $exe ]] || { echo "$exe not found: build it first" >&2; exit 1; }
done

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$run_dir"
log=$(mktemp /tmp/hnas-sample-efficiency.XXXXXX.log)
trap 'rm -f "$log"' EXIT

# One intra-op thread per rank: the ranks share the cores. Rerunning on an incomplete run
# directory resumes the search; on a complete one hnas only says so.
echo "exhaustive search of $(basename "$run_dir") at $ranks ranks (log: $run_dir/search.log)"
if ! mpirun -np "$ranks" --oversubscribe "$hnas" search --config "$source_dir/tools/bench/sample_efficiency.ini" \
    --run-dir "$run_dir" --run.threads=1 >"$log" 2>&1; then
  echo "hnas search failed:" >&2
  tail -20 "$log" >&2
  echo "(a run directory from another hnas version or configuration cannot be resumed: remove $run_dir)" >&2
  exit 1
fi
# Keep the log of the run that completed the search: it holds the results.h5 overhead line.
if grep -q 'search complete:' "$log"; then cp "$log" "$run_dir/search.log"; fi
if [[ -f $run_dir/search.log ]]; then
  grep -o 'search complete: .*' "$run_dir/search.log" | tail -1 |
    sed -E 's/$/ (results.h5 overhead goal < 1%)/'
  grep -o 'best: .*' "$run_dir/search.log" | tail -1
else
  grep -o 'search: .*complete; nothing to do' "$log" || true
fi
echo

"$bench" "$run_dir/results.h5" "$@"
