#!/usr/bin/env bash
# Installs what hnas needs to build and test on Debian/Ubuntu, skipping what is present.
# Elsewhere (clusters), load the equivalents instead, for example:
#   module load cmake gcc openmpi hdf5 boost cuda nccl
#   export CMAKE_PREFIX_PATH=/path/to/libtorch   # pytorch.org LibTorch or $(python -c 'import torch; print(torch.utils.cmake_prefix_path)')
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev                    # LibTorch C++ frontend (Debian ships 1.13, CPU)
  libopenblas0-pthread            # optimized BLAS: LibTorch on the reference BLAS is ~30x slower
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  libboost-program-options-dev
  libgtest-dev
  libsentencepiece-dev            # subword tokenizer of hnas_make_shards
  python3-doc                     # the built-in corpus: the Python documentation sources
  python3-torch python3-h5py python3-numpy python3-pandas   # benchmark reference, results checks
  python3-matplotlib              # tools/hnas-report
  slurm-wlm munge                 # the tests' one-node Slurm (label slurm); daemons started by the tests only
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all packages present"
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "install_deps: missing ${missing[*]} and no apt-get here; install them with your package manager or 'module load'" >&2
  exit 1
fi
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
echo "install_deps: installing ${missing[*]}"
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
