// SPDX-License-Identifier: Apache-2.0
// Dispatch between the fused CPU kernels and the plain LibTorch composition, and the
// composition itself (the path for CUDA tensors and the ground truth for kernel tests).
#include "hnas/model/ops.hpp"

#include <torch/torch.h>

#include <cmath>

#include "hnas/core/check.hpp"

namespace hnas::model {

at::Tensor project(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (x.numel() != weight.size(1)) return torch::nn::functional::linear(x, weight, bias);
  auto y = torch::mv(weight, x.reshape({-1}));
  if (bias.defined()) y = y + bias;
  auto sizes = x.sizes().vec();
  sizes.back() = weight.size(0);
  return y.view(sizes);
}

RopeTable make_rope_table(int64_t seq_len, int64_t head_dim, double theta, const at::TensorOptions& options) {
  HNAS_ASSERT(head_dim % 2 == 0, "rotary embedding needs an even head_dim, got " << head_dim);
  const int64_t half = head_dim / 2;
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto inv_freq = torch::pow(theta, -torch::arange(0, half, f64) * 2.0 / static_cast<double>(head_dim));
  auto angles = torch::outer(torch::arange(0, seq_len, f64), inv_freq);
  return RopeTable{torch::cos(angles).to(options.dtype(torch::kFloat32)),
                   torch::sin(angles).to(options.dtype(torch::kFloat32))};
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, Kernels kernels) {
  if (kernels == Kernels::Fused && fused::applies_to(x)) return fused::rms_norm(x, weight, eps);
  return reference::rms_norm(x, weight, eps);
}

at::Tensor swiglu(const at::Tensor& gate_up, Kernels kernels) {
  if (kernels == Kernels::Fused && fused::applies_to(gate_up)) return fused::swiglu(gate_up);
  return reference::swiglu(gate_up);
}

at::Tensor causal_attention(const at::Tensor& qkv, const AttentionShape& shape, const RopeTable& rope,
                            Kernels kernels) {
  if (kernels == Kernels::Fused && fused::applies_to(qkv) && fused::attention_pays(shape))
    return fused::causal_attention(qkv, shape, rope);
  if (qkv.size(1) > blocked::kAttentionBlock) return blocked::causal_attention(qkv, shape, rope);
  return reference::causal_attention(qkv, shape, rope);
}

at::Tensor cached_attention(const at::Tensor& qkv, const AttentionShape& s, const RopeTable& rope, at::Tensor& k_cache,
                            at::Tensor& v_cache, int64_t position) {
  const int64_t batch = qkv.size(0), n = qkv.size(1), length = position + n;
  const int64_t group = s.num_heads / s.num_kv_heads;
  auto parts = qkv.split({s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim, s.num_kv_heads * s.head_dim}, -1);
  const RopeTable here{rope.cos.narrow(0, position, n), rope.sin.narrow(0, position, n)};
  auto q = parts[0].view({batch, n, s.num_kv_heads, group, s.head_dim}).permute({0, 2, 3, 1, 4});
  auto k = parts[1].view({batch, n, s.num_kv_heads, s.head_dim}).transpose(1, 2);
  auto v = parts[2].view({batch, n, s.num_kv_heads, s.head_dim}).transpose(1, 2);
  k_cache.narrow(2, position, n).copy_(reference::apply_rope(k, here));
  v_cache.narrow(2, position, n).copy_(v);
  q = reference::apply_rope(q, here).reshape({batch * s.num_kv_heads, group * n, s.head_dim});
  const auto keys = k_cache.narrow(2, 0, length).reshape({batch * s.num_kv_heads, length, s.head_dim});
  const auto values = v_cache.narrow(2, 0, length).reshape({batch * s.num_kv_heads, length, s.head_dim});
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.head_dim));
  auto scores = torch::bmm(q, keys.transpose(1, 2)).mul_(scale);  // [B*KV, G*n, length]
  if (n > 1) {  // query i sees keys up to position + i; a single decoded token sees all
    auto mask = torch::full({n, length}, -std::numeric_limits<float>::infinity(), scores.options())
                    .triu(position + 1)
                    .repeat({group, 1});
    scores.add_(mask);
  }
  auto out = torch::bmm(torch::softmax(scores, -1), values);
  return out.view({batch, s.num_kv_heads, group, n, s.head_dim})
      .permute({0, 3, 1, 2, 4})
      .reshape({batch, n, s.num_heads * s.head_dim});
}

namespace reference {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  auto xf = x.to(torch::kFloat32);
  auto inv_rms = torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return (xf * inv_rms).to(x.scalar_type()) * weight;
}

at::Tensor swiglu(const at::Tensor& gate_up) {
  auto halves = gate_up.chunk(2, -1);
  return torch::silu(halves[0]) * halves[1];
}

at::Tensor apply_rope(const at::Tensor& x, const RopeTable& rope) {
  const int64_t seq_len = x.size(-2);
  auto cos = rope.cos.narrow(0, 0, seq_len).to(x.dtype());
  auto sin = rope.sin.narrow(0, 0, seq_len).to(x.dtype());
  auto halves = x.chunk(2, -1);
  return torch::cat({halves[0] * cos - halves[1] * sin, halves[1] * cos + halves[0] * sin}, -1);
}

GroupedHeads grouped_heads(const at::Tensor& qkv, const AttentionShape& s, const RopeTable& rope) {
  const int64_t batch = qkv.size(0), seq_len = qkv.size(1);
  const int64_t group = s.num_heads / s.num_kv_heads;
  auto parts = qkv.split({s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim, s.num_kv_heads * s.head_dim}, -1);
  auto q = parts[0].view({batch, seq_len, s.num_kv_heads, group, s.head_dim}).permute({0, 2, 3, 1, 4});
  auto k = parts[1].view({batch, seq_len, s.num_kv_heads, s.head_dim}).transpose(1, 2);
  auto v = parts[2].view({batch, seq_len, s.num_kv_heads, s.head_dim}).transpose(1, 2);
  return {apply_rope(q, rope).reshape({batch * s.num_kv_heads, group, seq_len, s.head_dim}),
          apply_rope(k, rope).reshape({batch * s.num_kv_heads, seq_len, s.head_dim}),
          v.reshape({batch * s.num_kv_heads, seq_len, s.head_dim})};
}

at::Tensor merged_heads(const at::Tensor& out, const AttentionShape& s, int64_t batch) {
  const int64_t seq_len = out.size(2);
  return out.reshape({batch, s.num_kv_heads, s.num_heads / s.num_kv_heads, seq_len, s.head_dim})
      .permute({0, 3, 1, 2, 4})
      .reshape({batch, seq_len, s.num_heads * s.head_dim});
}

at::Tensor causal_attention(const at::Tensor& qkv, const AttentionShape& s, const RopeTable& rope) {
  const int64_t batch = qkv.size(0), seq_len = qkv.size(1);
  const int64_t group = s.num_heads / s.num_kv_heads;
  const auto heads = grouped_heads(qkv, s, rope);
  const auto q = heads.q.reshape({batch * s.num_kv_heads, group * seq_len, s.head_dim});
  const auto& k = heads.k;
  const auto& v = heads.v;
  auto mask = torch::full({seq_len, seq_len}, -std::numeric_limits<float>::infinity(), qkv.options())
                  .triu(1)
                  .repeat({group, 1});
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.head_dim));
  auto scores = torch::baddbmm(mask, q, k.transpose(1, 2), /*beta=*/1.0, /*alpha=*/scale);
  auto out = torch::bmm(torch::softmax(scores, -1), v);  // [B*KV, G*T, D]
  return merged_heads(out.view({batch * s.num_kv_heads, group, seq_len, s.head_dim}), s, batch);
}

}  // namespace reference
}  // namespace hnas::model
