#!/usr/bin/env bash
# tools/experiments/cpu_composer.sh, the Composer experiment's driver, on a tiny
# configuration at two ranks: the controls are the search's best candidate and a drawn
# candidate with the winner's attention count, each extrapolated; seed 0 of the winner
# and baseline is not trained twice, and is the model a separate run directory trains
# at that seed; seeds 1 and 2 train all four; the report has every loss; a rerun skips
# every step and prints the same table.
#   experiment.sh HNAS MAKE_SHARDS MPIEXEC SOURCE_DIR
set -euo pipefail
hnas="$1"; make_shards="$2"; mpiexec="$3"; src="$4"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
source "$src/tests/e2e/scratch_lib.sh"
scratch experiment
fail() { echo "FAIL: $*"; exit 1; }
text_shards "$make_shards" "$work/text" "$src"

# The tiny pipeline of e2e_run_pipeline, on this test's shards.
sed -e "s|^\[pretrain\]|[pretrain]\ndata = $work/text_train_000000.bin\nvalid = $work/text_val_000000.bin|" \
  "$src/inputs/ci/run_tiny.ini" >"$work/tiny.ini"
driver() {
  CONFIG="$work/tiny.ini" HNAS="$hnas" MPIEXEC="$mpiexec" timeout --kill-after=10 300 \
    "$src/tools/experiments/cpu_composer.sh" "$work/exp" 2 >"$work/$1.log" 2>&1 || {
    tail -n 20 "$work/$1.log"
    fail "the driver failed ($1)"
  }
}
driver first
grep -F "cpu_composer: controls:" "$work/first.log"
/usr/bin/python3 - "$work/exp" <<'PY'
import glob, math, os, sys
import h5py
root = sys.argv[1]
def attrs(run, group):
    return dict(h5py.File(os.path.join(root, run, "results.h5"), "r")[group].attrs)
def models(run):
    with h5py.File(os.path.join(root, run, "results.h5"), "r") as f:
        return {k: float(g.attrs["final_validation_loss"]) for k, g in f["pretrain"].items()
                if k not in ("summary", "tokenizer")}
x = attrs("main", "extrapolate")
best = attrs("main", "aggregate")["best_arch"]
controls = sorted(glob.glob(os.path.join(root, "control_*")))
assert len(controls) == 2, controls
sources = [attrs(os.path.basename(c), "extrapolate")["source_arch"] for c in controls]
targets = [attrs(os.path.basename(c), "extrapolate")["arch"] for c in controls]
assert best in sources, (best, sources)
drawn = [s for s in sources if s != best][0]
assert drawn != x["source_arch"] and drawn.count("A") == x["source_arch"].count("A"), (drawn, x["source_arch"])
assert sorted(models("seed_0")) == sorted(targets), models("seed_0")  # the winner and baseline are main's
for seed in ("seed_1", "seed_2"):
    assert sorted(models(seed)) == sorted(targets + [x["arch"], x["baseline_arch"]]), models(seed)
    assert all(math.isfinite(v) for v in models(seed).values())
main = models("main")
assert main["winner"] != models("seed_1")[x["arch"]], "seed 1 trained the same winner as seed 0"
print("experiment: controls", sources, "->", targets)
PY
# The claim behind not training seed 0 twice: the winner at pretrain.seed 0 in another
# run directory is main's winner, bit for bit.
winner=$(/usr/bin/python3 -c 'import h5py,sys; print(h5py.File(sys.argv[1],"r")["extrapolate"].attrs["arch"])' \
  "$work/exp/main/results.h5")
timeout 120 "$mpiexec" -n 2 --oversubscribe --allow-run-as-root "$hnas" pretrain --config "$work/tiny.ini" \
  --arch "$winner" --pretrain.seed=0 --run-dir "$work/again" >"$work/again.log" 2>&1 || fail "pretrain again"
/usr/bin/python3 - "$work/exp/main/results.h5" "$work/again/results.h5" "$winner" <<'PY'
import sys
import h5py
main = h5py.File(sys.argv[1], "r")["pretrain/winner/validation"][:]
again = h5py.File(sys.argv[2], "r")["pretrain"][sys.argv[3]]["validation"][:]
assert (main == again).all(), (main, again)
print("experiment: seed 0 of the winner is the same model in any run directory")
PY

table() { sed -n '/^ *role /,$p' "$work/$1.log"; }
table first
if table first | grep -q "nan\|NaN"; then fail "the report has missing values"; fi
[ "$(table first | grep -c -E '^ *(winner|baseline|best candidate|random control) +[AM]+ +[0-9]')" -eq 4 ] ||
  fail "the report lacks a role"
driver second
for step in search aggregate extrapolate pretrain; do
  grep -qF "$step: complete in $work/exp/main; skipped" "$work/second.log" || fail "rerun did not skip $step"
done
[ "$(grep -c "pretrain: complete in $work/exp/seed_" "$work/second.log")" -eq 3 ] || fail "rerun retrained a seed"
if grep -q "generate: prefill" "$work/second.log"; then fail "rerun timed the models again"; fi
diff <(table first) <(table second) || fail "the rerun's table differs"
echo "experiment: all checks passed"
