#!/usr/bin/env bash
# Quickstart: install what is missing, build, and run `hnas evaluate` on the built-in
# default (inputs/quickstart.ini: AAMMMM on a reduced in-context-recall task).
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install_deps.sh
./tools/build.sh
./build/src/app/hnas evaluate --config inputs/quickstart.ini "$@"
