// SPDX-License-Identifier: Apache-2.0
// Causal attention by blocks of queries, with the softmax's logsumexp kept per row and the
// scores recomputed in the backward pass (the schedule of FlashAttention, in LibTorch ops):
// memory linear in the context where the reference composition keeps [B, H, T, T].
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "hnas/core/check.hpp"
#include "hnas/model/ops.hpp"

namespace hnas::model::blocked {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The softmax and the key and value gradients run in float32, or in double for double inputs.
torch::Dtype accumulation_dtype(const at::Tensor& t) {
  return t.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

// Rows s..s+c-1 of `scores` [N, G*c, e] (e = s + c keys) may not see the keys after them.
void mask_future(at::Tensor& scores, int64_t n, int64_t group, int64_t s, int64_t c) {
  const auto future = torch::ones({c, c}, scores.options().dtype(torch::kBool)).triu(1);
  scores.view({n, group, c, s + c}).narrow(3, s, c).masked_fill_(future, -std::numeric_limits<float>::infinity());
}

// The scores (float32 or double) of queries s..s+c-1 against keys 0..s+c-1, scaled and masked.
at::Tensor block_scores(const at::Tensor& q_block, const at::Tensor& keys, double scale, int64_t n, int64_t group,
                        int64_t s, int64_t c) {
  auto scores = torch::bmm(q_block, keys.transpose(1, 2)).to(accumulation_dtype(q_block)).mul_(scale);
  mask_future(scores, n, group, s, c);
  return scores;
}

// q [N, G, T, D] (the G query heads that read one KV head), k and v [N, T, D], all
// rotated already; returns [N, G, T, D].
struct BlockedCausalAttention : public torch::autograd::Function<BlockedCausalAttention> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            int64_t block) {
    const int64_t n = q.size(0), group = q.size(1), t = q.size(2), d = q.size(3);
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    auto out = torch::empty_like(q);
    auto lse = torch::empty({n, group, t}, q.options().dtype(accumulation_dtype(q)));
    for (int64_t s = 0; s < t; s += block) {
      const int64_t c = std::min(block, t - s), e = s + c;
      const auto q_block = q.narrow(2, s, c).reshape({n, group * c, d});
      const auto scores = block_scores(q_block, k.narrow(1, 0, e), scale, n, group, s, c);
      const auto row_lse = torch::logsumexp(scores, -1, /*keepdim=*/true);  // [N, G*c, 1]
      const auto p = (scores - row_lse).exp_();
      const auto o = torch::bmm(p.to(v.scalar_type()), v.narrow(1, 0, e));  // [N, G*c, D]
      out.narrow(2, s, c).copy_(o.view({n, group, c, d}));
      lse.narrow(2, s, c).copy_(row_lse.view({n, group, c}));
    }
    ctx->save_for_backward({q, k, v, out, lse});
    ctx->saved_data["block"] = block;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    const int64_t block = ctx->saved_data["block"].toInt();
    const int64_t n = q.size(0), group = q.size(1), t = q.size(2), d = q.size(3);
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    const auto dout = grads[0].to(q.scalar_type()).contiguous();
    const auto acc = accumulation_dtype(q);
    // delta_i = sum_j p_ij dp_ij = dout_i . out_i, the softmax backward's row term.
    const auto delta = (dout.to(acc) * out.to(acc)).sum(-1);  // [N, G, T]
    auto dq = torch::empty_like(q);
    // The key and value gradients sum over every later block: float32 accumulators at least.
    auto dk = torch::zeros({n, t, d}, k.options().dtype(acc));
    auto dv = torch::zeros({n, t, d}, v.options().dtype(acc));
    for (int64_t s = 0; s < t; s += block) {
      const int64_t c = std::min(block, t - s), e = s + c;
      const auto q_block = q.narrow(2, s, c).reshape({n, group * c, d});
      const auto keys = k.narrow(1, 0, e), values = v.narrow(1, 0, e);
      auto p = block_scores(q_block, keys, scale, n, group, s, c);
      p.sub_(lse.narrow(2, s, c).reshape({n, group * c, 1})).exp_();
      const auto dout_block = dout.narrow(2, s, c).reshape({n, group * c, d});
      dv.narrow(1, 0, e).add_(torch::bmm(p.transpose(1, 2).to(v.scalar_type()), dout_block).to(acc));
      auto ds = torch::bmm(dout_block, values.transpose(1, 2)).to(acc);  // dp
      ds.sub_(delta.narrow(2, s, c).reshape({n, group * c, 1})).mul_(p).mul_(scale);
      const auto ds_low = ds.to(q.scalar_type());
      dq.narrow(2, s, c).copy_(torch::bmm(ds_low, keys).view({n, group, c, d}));
      dk.narrow(1, 0, e).add_(torch::bmm(ds_low.transpose(1, 2), q_block).to(acc));
    }
    return {dq, dk.to(k.scalar_type()), dv.to(v.scalar_type()), torch::autograd::Variable()};
  }
};

}  // namespace

at::Tensor causal_attention(const at::Tensor& qkv, const AttentionShape& s, const RopeTable& rope, int64_t block) {
  HNAS_CHECK(block >= 1, InternalError, "blocked::causal_attention: block must be >= 1, got " << block);
  const auto heads = reference::grouped_heads(qkv, s, rope);
  const auto out =
      BlockedCausalAttention::apply(heads.q.contiguous(), heads.k.contiguous(), heads.v.contiguous(), block);
  return reference::merged_heads(out, s, qkv.size(0));
}

}  // namespace hnas::model::blocked
