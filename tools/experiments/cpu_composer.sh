#!/usr/bin/env bash
# The CPU-scale Composer experiment (README "Results"): does the recipe beat the
# Llama-style baseline on 2 cores?
#   tools/experiments/cpu_composer.sh [ROOT [RANKS]]      (default runs/cpu_composer, 2)
# Steps, each a run directory under ROOT:
#   main        hnas run on the experiment's INI: search, N_0, stacking, pre-training of
#               the winner and the baseline at pretrain.seed 0, inference, summary;
#   control_X   hnas extrapolate of the two controls, X: the search's best candidate, and
#               one six-layer candidate drawn (Python's random, seed 0) among those with
#               the winner's attention count;
#   seed_S      hnas pretrain at pretrain.seed S of the controls (S = 0) and of all four
#               (S = 1, 2), on the same tokens; then hnas generate times the four
#               models of seed_1 in one process (decode latency, KV cache).
# Then tools/experiments/cpu_composer_report.py ROOT prints the table. Running the script
# again continues where it stopped. Environment: CONFIG (default
# inputs/experiments/cpu_composer.ini), HNAS (the binary), MPIEXEC (mpirun).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=${1:-runs/cpu_composer}
ranks=${2:-2}
config=${CONFIG:-inputs/experiments/cpu_composer.ini}
hnas=${HNAS:-build/src/app/hnas}
python=/usr/bin/python3  # Debian's, with h5py (a pyenv python may lack it)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
launch() { "${MPIEXEC:-mpirun}" -np "$ranks" --oversubscribe "$hnas" "$@"; }
attribute() {  # attribute FILE GROUP NAME
  "$python" -c 'import h5py, sys; print(h5py.File(sys.argv[1], "r")[sys.argv[2]].attrs[sys.argv[3]])' "$@"
}

if [[ -z "${CONFIG:-}" && ! -f runs/corpus/python_docs_train_000000.bin ]]; then
  ./tools/prepare_corpus.sh runs/corpus 4096
fi
mkdir -p "$root"
launch run --config "$config" --run-dir "$root/main"

read -r best drawn < <("$python" - "$root/main/results.h5" <<'PY'
import random, sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    best = f["aggregate"].attrs["best_arch"]
    source = f["extrapolate"].attrs["source_arch"]
    archs = {a.decode() for a in f["search/candidates"]["arch"]}
pool = sorted(a for a in archs if a.count("A") == source.count("A") and a not in (best, source))
if not pool:
    sys.exit(f"cpu_composer: no candidate other than {best} and {source} has {source.count('A')} attention layers")
print(best, random.Random(0).choice(pool))
PY
)
[[ -n "${drawn:-}" ]] || exit 1  # the Python above said why
echo "cpu_composer: controls: the best candidate $best; drawn with the winner's attention count: $drawn"
controls=()
for arch in "$best" "$drawn"; do
  launch extrapolate --config "$config" --arch "$arch" --run-dir "$root/control_$arch"
  controls+=("$(attribute "$root/control_$arch/results.h5" extrapolate arch)")
done
winner=$(attribute "$root/main/results.h5" extrapolate arch)
baseline=$(attribute "$root/main/results.h5" extrapolate baseline_arch)

# Seed 0 of the winner and the baseline is main's: a model's initialisation is keyed by
# its architecture and pretrain.seed, and the token order by the seed alone.
launch pretrain --config "$config" --arch "${controls[*]}" --pretrain.seed=0 --run-dir "$root/seed_0"
for seed in 1 2; do
  launch pretrain --config "$config" --arch "$winner $baseline ${controls[*]}" --pretrain.seed=$seed \
    --run-dir "$root/seed_$seed"
done
# Decode latency and KV cache of all four, timed in one process (once: hnas generate
# itself times again whenever it is asked to).
if ! "$python" -c 'import h5py, sys; sys.exit("inference" not in h5py.File(sys.argv[1], "r"))' \
  "$root/seed_1/results.h5"; then
  launch generate --config "$config" --run-dir "$root/seed_1"
fi
"$python" tools/experiments/cpu_composer_report.py "$root"
