# Sourced by every job script: the site's modules and the runtime knobs in one place.
# Edit the module names for your cluster.
if command -v module >/dev/null 2>&1; then
  module load gcc openmpi hdf5 boost cuda nccl 2>/dev/null || true
fi
export HNAS_ROOT="${HNAS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
export HNAS_BIN="${HNAS_BIN:-$HNAS_ROOT/build/src/app/hnas}"
# One intra-op thread pool per rank, sized to the cores the scheduler gave it.
export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-${OMP_NUM_THREADS:-1}}"
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"   # INFO when debugging communicator set-up
