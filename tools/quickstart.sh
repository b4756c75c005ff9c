#!/usr/bin/env bash
# Quickstart: install what is missing, build, tokenize the built-in corpus (the Python
# documentation, SentencePiece; tools/prepare_corpus.sh), then the whole Composer
# pipeline at 2 ranks on inputs/quickstart_run.ini: a MAD search of six-layer
# candidates, N_0 aggregation, stacking to a small CPU target, pre-training of the
# winner and the Llama-style baseline, inference timing and the summary table. Results
# in runs/quickstart/results.h5. Extra arguments go to hnas run (--pretrain.tokens=...).
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install_deps.sh
./tools/build.sh
./tools/prepare_corpus.sh runs/corpus 4096

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # containers and CI run as root
rm -rf runs/quickstart  # a fresh run each time (rerunning on a run directory continues it)
start=$SECONDS
mpirun -np 2 --oversubscribe ./build/src/app/hnas run --config inputs/quickstart_run.ini \
  --run-dir runs/quickstart "$@"
echo "quickstart: the pipeline took $((SECONDS - start)) s; results in runs/quickstart/results.h5" \
     "(/search /aggregate /extrapolate /pretrain /inference /summary), checkpoints in runs/quickstart/checkpoints"
