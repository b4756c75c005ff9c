// SPDX-License-Identifier: Apache-2.0
// Fused causal GQA attention with rotary embedding for CPU float32, flash-attention style:
// no [B, H, T, T] scores, only a per-row logsumexp; the backward recomputes probabilities.
// This file wires the passes (attention_forward.cpp, attention_backward.cpp) into autograd.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "hnas/core/check.hpp"
#include "hnas/model/ops.hpp"
#include "kernels/attention_impl.hpp"

namespace hnas::model {
namespace {

using attention_impl::Dims;

class CausalAttentionFunction : public torch::autograd::Function<CausalAttentionFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& qkv_in, const at::Tensor& cos,
                            const at::Tensor& sin, int64_t heads, int64_t kv_heads, int64_t head_dim) {
    const at::Tensor qkv = qkv_in.contiguous();
    const Dims dm{qkv.size(0), qkv.size(1), heads, kv_heads, head_dim};
    at::Tensor out = at::empty({dm.batch, dm.seq, heads * head_dim}, qkv.options());
    at::Tensor lse = at::empty({dm.batch, heads, dm.seq}, qkv.options());
    attention_impl::attention_forward(dm, qkv.data_ptr<float>(), cos.data_ptr<float>(), sin.data_ptr<float>(),
                                      out.data_ptr<float>(), lse.data_ptr<float>());
    ctx->save_for_backward({qkv, cos, sin, out, lse});
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["kv_heads"] = kv_heads;
    ctx->saved_data["head_dim"] = head_dim;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& qkv = saved[0];
    const Dims dm{qkv.size(0), qkv.size(1), ctx->saved_data["heads"].toInt(), ctx->saved_data["kv_heads"].toInt(),
                  ctx->saved_data["head_dim"].toInt()};
    const at::Tensor dout = grad_outputs[0].contiguous();
    at::Tensor dqkv = at::empty(qkv.sizes(), qkv.options());
    attention_impl::attention_backward(dm, qkv.data_ptr<float>(), saved[1].data_ptr<float>(),
                                       saved[2].data_ptr<float>(), saved[3].data_ptr<float>(),
                                       saved[4].data_ptr<float>(), dout.data_ptr<float>(), dqkv.data_ptr<float>());
    return {dqkv, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

namespace fused {

bool attention_pays(const AttentionShape& shape) {
#if defined(__AVX512F__)
  (void)shape;
  return true;
#else
  return shape.head_dim <= 8;
#endif
}

at::Tensor causal_attention(const at::Tensor& qkv, const AttentionShape& shape, const RopeTable& rope) {
  const int64_t H = shape.num_heads, KV = shape.num_kv_heads, D = shape.head_dim;
  HNAS_ASSERT(applies_to(qkv), "fused::causal_attention needs a CPU float32 qkv tensor");
  HNAS_ASSERT(H > 0 && KV > 0 && H % KV == 0,
              "fused::causal_attention: num_heads " << H << " must be a positive multiple of num_kv_heads " << KV);
  HNAS_ASSERT(D > 0 && D % 2 == 0, "fused::causal_attention: rotary embedding needs an even head_dim, got " << D);
  HNAS_ASSERT(qkv.dim() == 3 && qkv.size(2) == (H + 2 * KV) * D,
              "fused::causal_attention: qkv " << qkv.sizes() << " must be [B, T, (H + 2 KV) * D] = [B, T, "
                                              << (H + 2 * KV) * D << "]");
  const int64_t T = qkv.size(1);
  for (const at::Tensor* table : {&rope.cos, &rope.sin}) {
    HNAS_ASSERT(applies_to(*table) && table->dim() == 2 && table->size(0) >= T && table->size(1) == D / 2,
                "fused::causal_attention: rope tables must be CPU float32 [>= " << T << ", " << D / 2 << "]");
  }
  return CausalAttentionFunction::apply(qkv, rope.cos.narrow(0, 0, T).contiguous(),
                                        rope.sin.narrow(0, 0, T).contiguous(), H, KV, D);
}

}  // namespace fused
}  // namespace hnas::model
