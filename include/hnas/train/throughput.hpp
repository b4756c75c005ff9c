// SPDX-License-Identifier: Apache-2.0
// Compute resources of one process: thread counts, and the peak-throughput reference for
// MFU (the FLOP/s this process reaches on a large float32 matrix product, measured).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace hnas::train {

/// Sets the intra-op thread count of LibTorch and of the BLAS behind it. OpenBLAS keeps
/// its own pool, which at::set_num_threads does not size; left alone it runs one thread
/// per core inside every LibTorch worker. Rank-local; call before any tensor work.
void set_compute_threads(int threads);

/// Makes glibc keep freed memory in the process: a training step frees and reallocates
/// the same activation sizes every step, and by default glibc returns large blocks to the
/// kernel and page-faults them in again (thousands of faults per step). Rank-local; call
/// once at start-up, before the first large allocation.
void keep_freed_memory();

/// OpenBLAS chooses its kernels by CPU model when it loads. On virtual machines whose CPU
/// model it does not know it falls back to generic "Prescott" kernels, about 4x slower
/// than its AVX-512 ones. Returns the core type to request through OPENBLAS_CORETYPE
/// ("SkylakeX" or "Haswell") when that happened on a CPU with AVX-512 or AVX2, else "".
/// The variable only takes effect in a new process (see main).
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

/// Measures float32 GEMM FLOP/s on the CPU with the current intra-op thread count
/// (square products of size n, best of `repeats` after a warm-up). Rank-local; ~0.1-1 s.
double measure_cpu_sgemm_flops(int n = 1024, int repeats = 5);

}  // namespace hnas::train
