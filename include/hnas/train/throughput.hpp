// SPDX-License-Identifier: Apache-2.0
// Compute resources of one process: thread counts, and the peak-throughput reference for
// MFU (an accelerator's data-sheet peak, or the FLOP/s this process reaches on a large
// float32 matrix product, measured).
#pragma once

#include <string>

namespace hnas::train {

/// Sets the intra-op thread count of LibTorch and of the BLAS behind it. OpenBLAS keeps
/// its own pool, which at::set_num_threads does not size; left alone it runs one thread
/// per core inside every LibTorch worker. Rank-local; call before any tensor work.
void set_compute_threads(int threads);

/// The dense bf16 tensor-core peak of a known accelerator, in TFLOP/s, from its CUDA
/// device name (vendor data sheets: H100 SXM and H200 989, H100 PCIe 756, H100 NVL 835,
/// A100 312, L40S 362, A10 125); 0 for a device not in the table (MFU then uses a
/// measured peak). Pure.
double known_bf16_peak_tflops(const std::string& device_name);

/// Measures float32 GEMM FLOP/s on the CPU with the current intra-op thread count
/// (square products of size n, best of `repeats` after a warm-up). Rank-local; ~0.1-1 s.
double measure_cpu_sgemm_flops(int n = 1024, int repeats = 5);

}  // namespace hnas::train
