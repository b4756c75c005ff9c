#!/usr/bin/env bash
# hnas aggregate and hnas extrapolate on the run directory of a tiny search (the
# 16-candidate exhaustive search of inputs/ci/search_tiny.ini): the records checked with
# h5py and pandas, reruns skipped, the degenerate case of a broad cluster, and bad inputs.
#   aggregate_extrapolate.sh HNAS MPIEXEC SOURCE_DIR
source "$(dirname "$0")/search_lib.sh"
agg() { /usr/bin/python3 "$src/tests/e2e/aggregate_check.py" "$@"; }
mpi() { cmd=("$mpiexec" -n 2 --oversubscribe --allow-run-as-root "$hnas" "$@"); }
expect_status() {
  if [ "$status" -ne "$1" ]; then echo "FAIL: expected exit $1, got $status"; exit 1; fi
}
expect_log() {  # expect_log NAME TEXT: the run's output contains TEXT
  if ! grep -qF -- "$2" "$work/$1.log"; then echo "FAIL: $1 output lacks: $2"; exit 1; fi
}
one_line_error() {  # the error is one line (plus nothing else from rank 0)
  local n
  n=$(grep -c "error:" "$work/$1.log" || true)
  if [ "$n" -ne 1 ]; then echo "FAIL: $1: expected one error line, got $n"; exit 1; fi
}

dir="$work/run"
search_cmd 2 --run-dir "$dir" --run.threads=1
run search
expect_status 0
cp -r "$dir" "$work/search-only"

# The aggregate of the search, then its record checked in full.
mpi aggregate --run-dir "$dir" --aggregate.clusters=2 --run.threads=1
run aggregate
expect_status 0
expect_log aggregate "aggregate: chosen"
agg record "$dir"

# Rerun: skipped; another K: made again.
run aggregate-again
expect_status 0
expect_log aggregate-again "aggregate: complete in $dir; skipped"
mpi aggregate --run-dir "$dir" --aggregate.clusters=3 --run.threads=1
run aggregate-k3
expect_log aggregate-k3 "K-means K=3"
agg attr "$dir" /aggregate clusters=3
agg record "$dir"

# Extrapolate the aggregate, then check both groups.
cmd=("$hnas" extrapolate --run-dir "$dir" --target 1B)
run extrapolate
expect_status 0
expect_log extrapolate "from /aggregate (n0)"
agg record "$dir" extrapolate
run extrapolate-again
expect_log extrapolate-again "extrapolate: complete in $dir; skipped"

# A resumed search rewrites /search and keeps the later stages' groups.
agg status "$dir" stopped
search_cmd 2 --run-dir "$dir" --run.threads=1
run search-resumed
expect_status 0
agg attr "$dir" /search status=completed
agg record "$dir" extrapolate

# The paper's 6-layer aggregate at 1B, with no run directory: printed only.
cmd=("$hnas" extrapolate --arch AAMMMM --method stack --target 1B)
run paper-6
expect_status 0
expect_log paper-6 "winner   AAMMMMAAMMMMAAMMMMAAMMMMAMM"
expect_log paper-6 "KV cache per token 1.78x smaller"

# The degenerate case: a broad top cluster of one-attention candidates votes MMMM, which
# the search never evaluated: the aggregator evaluates it, warns, and records both.
deg="$work/degenerate"
cp -r "$dir" "$deg"
agg degenerate "$deg"
mpi aggregate --run-dir "$deg" --aggregate.clusters=2 --run.threads=1
run degenerate
expect_status 0
expect_log degenerate "outside the top cluster's 25%-25%"
expect_log degenerate "evaluating MMMM with the search's evaluator"
agg attr "$deg" /aggregate arch=MMMM method_used=n0 attention_fraction=0 members=4
agg evaluations "$deg" MMMM
agg record "$deg"
# fallback = best takes the best member and says why; context tries N_1 (MMMM again, not
# trained twice), then N_all, which narrows to the member MMAM.
mpi aggregate --run-dir "$deg" --aggregate.clusters=2 --aggregate.fallback=best --run.threads=1
run degenerate-best
agg attr "$deg" /aggregate arch=MMAM method=n0 method_used=best
expect_log degenerate-best "aggregate.fallback = best chose best MMAM"
agg record "$deg"
mpi aggregate --run-dir "$deg" --aggregate.clusters=2 --aggregate.fallback=context --run.threads=1
run degenerate-context
agg attr "$deg" /aggregate arch=MMAM method_used=nall
agg evaluations "$deg" MMMM
agg record "$deg"

# A search that has not completed: refused, or aggregated with --partial and said so.
part="$work/partial"
cp -r "$dir" "$part"
agg status "$part" stopped
mpi aggregate --run-dir "$part" --run.threads=1
run partial-refused
expect_status 2
expect_log partial-refused "has not completed (status stopped)"
mpi aggregate --run-dir "$part" --partial --run.threads=1
run partial
expect_status 0
expect_log partial "this aggregate is of the candidates so far (--partial)"
agg attr "$part" /aggregate partial=1 search_status=stopped

# Bad inputs: one line, exit 2, nothing written.
mkdir -p "$work/empty"
mpi aggregate --run-dir "$work/empty" --run.threads=1
run no-search
expect_status 2
expect_log no-search "no search in $work/empty"
one_line_error no-search
if [ -e "$work/empty/results.h5" ]; then echo "FAIL: a results file appeared"; exit 1; fi
mpi aggregate --run-dir "$work/missing" --run.threads=1
run no-directory
expect_status 2
if [ -e "$work/missing" ]; then echo "FAIL: a refused aggregate created its run directory"; exit 1; fi

none="$work/none-valid"
cp -r "$dir" "$none"
agg invalidate "$none"
mpi aggregate --run-dir "$none" --run.threads=1
run no-valid
expect_status 2
expect_log no-valid "no valid candidate at its highest fidelity (16 evaluated: 16 diverged)"
one_line_error no-valid

short="$work/short"
cp -r "$dir" "$short"
agg shorten "$short"
mpi aggregate --run-dir "$short" --run.threads=1
run short
expect_status 2
expect_log short "has 3 layers but the search's architectures have 4"

cmd=("$hnas" extrapolate --arch AAMMMM --target 5B)
run unknown-preset
expect_status 2
expect_log unknown-preset 'unknown target "5B"; the presets are 100M, 350M, 1B, 3B'
one_line_error unknown-preset
cmd=("$hnas" extrapolate --arch AAQM --target 1B)
run unknown-primitive
expect_status 2
expect_log unknown-primitive "unknown primitive at position 3 ('Q')"
one_line_error unknown-primitive
cmd=("$hnas" extrapolate --run-dir "$work/empty" --target 1B)
run extrapolate-no-search
expect_status 2
expect_log extrapolate-no-search "no search in $work/empty"
cmd=("$hnas" extrapolate --run-dir "$work/search-only" --target 1B)
run extrapolate-no-aggregate
expect_status 2
expect_log extrapolate-no-aggregate "has no completed aggregate (/aggregate)"
echo "aggregate_extrapolate: all checks passed"
