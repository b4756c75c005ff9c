// SPDX-License-Identifier: Apache-2.0
// The element-wise-heavy operations of the hybrid model, each in two implementations:
// `reference::` composes plain LibTorch ops (any device, any dtype; the path for CUDA),
// `fused::` are hand-written CPU kernels for float32 that make one pass over memory and
// are wired into autograd. Attention has a third, `blocked::`, LibTorch ops by blocks of
// queries for long contexts. The unqualified functions pick `fused::` when asked to and the
// inputs are CPU float32, and `reference::` otherwise.
// Rank-local tensor operations; the fused kernels parallelise internally with at::parallel_for.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace hnas::model {

/// Which implementation the model's operations use.
enum class Kernels {
  /// hand-written CPU kernels where they apply (CPU float32) and pay (fused::attention_pays),
  /// else Reference
  Fused,
  Reference,  ///< plain LibTorch composition everywhere
};

/// Rotary-embedding tables for positions [0, T): cos and sin of shape [T, head_dim / 2],
/// float32, rotating the two halves of each head (GPT-NeoX layout, as MAD and Llama).
struct RopeTable {
  at::Tensor cos;
  at::Tensor sin;
};
/// Builds the tables for `seq_len` positions; theta is the base (10000 in MAD, 500000 in Llama 3).
RopeTable make_rope_table(int64_t seq_len, int64_t head_dim, double theta, const at::TensorOptions& options);

/// Shapes for attention over a packed QKV projection: the last dimension of `qkv` is
/// [num_heads query heads | num_kv_heads key heads | num_kv_heads value heads] x head_dim.
/// Query head h reads key/value head h / (num_heads / num_kv_heads).
struct AttentionShape {
  int64_t num_heads;
  int64_t num_kv_heads;
  int64_t head_dim;
};

/// x W^T (+ bias) over the last dimension, as torch::nn::functional::linear. A single row
/// (decoding one token of one sequence) takes the matrix-vector product, which streams W
/// once; linear() takes the GEMM path, whose packing of W made it 2.4x slower (3072 x 512,
/// one core, OpenBLAS).
at::Tensor project(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

/// y = x / sqrt(mean(x^2, -1) + eps) * weight, over the last dimension.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, Kernels kernels);
/// SiLU(gate) * up, where gate_up = [..., 2 * hidden] holds gate then up.
at::Tensor swiglu(const at::Tensor& gate_up, Kernels kernels);
/// Causal self-attention with rotary embedding applied to queries and keys.
/// qkv: [B, T, (H + 2 KV) * D]; returns [B, T, H * D]. Softmax scale 1/sqrt(D). The fused
/// kernel where it applies and pays; else, above blocked::kAttentionBlock positions, the
/// blocked one (memory linear in T); else the reference.
at::Tensor causal_attention(const at::Tensor& qkv, const AttentionShape& shape, const RopeTable& rope, Kernels kernels);

/// Causal attention of the new tokens in `qkv` [B, n, (H + 2 KV) * D], at positions
/// position..position+n-1, over the keys and values cached before them and their own:
/// their K and V are written into `k_cache`/`v_cache` [B, KV, capacity, D] first. Returns
/// [B, n, H * D], equal to causal_attention over the whole sequence at those positions.
at::Tensor cached_attention(const at::Tensor& qkv, const AttentionShape& shape, const RopeTable& rope,
                            at::Tensor& k_cache, at::Tensor& v_cache, int64_t position);

namespace reference {
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor swiglu(const at::Tensor& gate_up);
/// Rotates the halves of the last dimension of x: [..., T, D] with tables [T, D/2].
at::Tensor apply_rope(const at::Tensor& x, const RopeTable& rope);
at::Tensor causal_attention(const at::Tensor& qkv, const AttentionShape& shape, const RopeTable& rope);
/// The heads of a packed qkv [B, T, (H + 2 KV) * D], q and k rotated: q [B * KV, G, T, D]
/// (the G = H / KV query heads that read each KV head, so that one batched product per KV
/// head serves its group without repeating K and V), k and v [B * KV, T, D].
struct GroupedHeads {
  at::Tensor q, k, v;
};
GroupedHeads grouped_heads(const at::Tensor& qkv, const AttentionShape& shape, const RopeTable& rope);
/// The attention output [B * KV, G, T, D] back to [B, T, H * D].
at::Tensor merged_heads(const at::Tensor& out, const AttentionShape& shape, int64_t batch);
}  // namespace reference

namespace blocked {
/// Queries per block of blocked::causal_attention, and the context above which
/// causal_attention takes it instead of the reference.
constexpr int64_t kAttentionBlock = 512;
/// Causal attention that never holds the [T, T] scores: the queries go in blocks of
/// `block` positions against the keys up to each block's end, the softmax's logsumexp is
/// kept per row, and the backward pass recomputes each block's probabilities. It keeps
/// the rotated q and k, v, the output and the logsumexp (linear in T) where the reference
/// keeps [B x heads, T, T] per layer: the path for long contexts, on CUDA above all. Any
/// device and dtype: the products in the inputs' dtype (bf16 under autocast), the softmax
/// and the key and value gradients in float32. Supports autograd.
at::Tensor causal_attention(const at::Tensor& qkv, const AttentionShape& shape, const RopeTable& rope,
                            int64_t block = kAttentionBlock);
}  // namespace blocked

namespace fused {
/// Each requires CPU float32 inputs (contiguous or not) and supports autograd.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor swiglu(const at::Tensor& gate_up);
at::Tensor causal_attention(const at::Tensor& qkv, const AttentionShape& shape, const RopeTable& rope);
/// True where the fused kernels apply to `t` (CPU, float32).
bool applies_to(const at::Tensor& t);
/// True where fused::causal_attention beats the reference on the instruction set the
/// kernels were built for. Its 16-lane accumulators fit AVX-512's 32 registers; on AVX2
/// they spill above head_dim 8 and the kernel ran 3-6x slower than the reference
/// (tools/bench/kernels_bench, AMD EPYC Zen 3).
bool attention_pays(const AttentionShape& shape);
}  // namespace fused

}  // namespace hnas::model
