// SPDX-License-Identifier: Apache-2.0
// Peak-throughput reference for MFU: the FLOP/s this process reaches on a large
// single-precision matrix product (CPU), measured, not looked up.
#pragma once

namespace hnas::train {

/// Measures float32 GEMM FLOP/s on the CPU with the current intra-op thread count
/// (square products of size n, best of `repeats` after a warm-up). Rank-local; ~0.1-1 s.
double measure_cpu_sgemm_flops(int n = 1024, int repeats = 5);

}  // namespace hnas::train
