// SPDX-License-Identifier: Apache-2.0
// Compute resources of one process: thread counts, and the peak-throughput reference for
// MFU (the FLOP/s this process reaches on a large float32 matrix product, measured).
#pragma once

namespace hnas::train {

/// Sets the intra-op thread count of LibTorch and of the BLAS behind it. OpenBLAS keeps
/// its own pool, which at::set_num_threads does not size; left alone it runs one thread
/// per core inside every LibTorch worker. Rank-local; call before any tensor work.
void set_compute_threads(int threads);

/// Measures float32 GEMM FLOP/s on the CPU with the current intra-op thread count
/// (square products of size n, best of `repeats` after a warm-up). Rank-local; ~0.1-1 s.
double measure_cpu_sgemm_flops(int n = 1024, int repeats = 5);

}  // namespace hnas::train
