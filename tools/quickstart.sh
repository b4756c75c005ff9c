#!/usr/bin/env bash
# Quickstart: install what is missing, build, run `hnas evaluate` on the built-in default
# (inputs/quickstart.ini: AAMMMM on a reduced in-context-recall task), then a small
# distributed search (inputs/quickstart_search.ini: BO over 6-layer interleavings at 2
# ranks) whose results land in runs/quickstart/results.h5.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install_deps.sh
./tools/build.sh
./build/src/app/hnas evaluate --config inputs/quickstart.ini "$@"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # containers and CI run as root
rm -rf runs/quickstart  # a fresh search each time (rerunning on a run directory resumes it)
mpirun -np 2 --oversubscribe ./build/src/app/hnas search --config inputs/quickstart_search.ini \
  --run-dir runs/quickstart
