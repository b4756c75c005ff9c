// SPDX-License-Identifier: Apache-2.0
// Set-up of the process before any library starts work: the environment the BLAS and
// OpenMP read when they load, glibc's memory policy, and the intra-op thread count a rank
// should use. Everything here is rank-local and runs first thing in main.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace hnas {

/// Makes glibc keep freed memory in the process: a training step frees and reallocates
/// the same activation sizes every step, and by default glibc returns large blocks to the
/// kernel and page-faults them in again (thousands of faults per step). Call once at
/// start-up, before the first large allocation.
void keep_freed_memory();

/// OpenBLAS chooses its kernels by CPU model when it loads. On virtual machines whose CPU
/// model it does not know it falls back to generic "Prescott" kernels, about 4x slower
/// than its AVX-512 ones. Returns the core type to request through OPENBLAS_CORETYPE
/// ("SkylakeX" or "Haswell") when that happened on a CPU with AVX-512 or AVX2, else "".
/// The variable only takes effect in a new process (see restart_with_launch_environment).
std::string better_openblas_core();

/// Variables the runtime libraries read only when they load, with the values this machine
/// wants, for those not already set in the environment: OPENBLAS_CORETYPE (see
/// better_openblas_core), and OMP_WAIT_POLICY=passive when OpenBLAS runs its own thread pool
/// beside LibTorch's OpenMP pool (spinning OpenMP workers otherwise hold the cores the
/// OpenBLAS threads need: ~20% of a training step on 2 cores).
std::vector<std::pair<std::string, std::string>> launch_environment();

/// Sets launch_environment() and re-executes this program once (same pid and argv) if
/// anything was missing. Call first thing in main, before any thread or MPI exists;
/// returns when nothing had to change (or the exec failed: then the run is only slower).
void restart_with_launch_environment(char** argv);

/// Intra-op threads for one rank: `requested` if > 0, else SLURM_CPUS_PER_TASK, else the
/// node's cores shared among `ranks_on_node` ranks (at least 1).
int resolve_threads(int requested, int ranks_on_node = 1);

}  // namespace hnas
