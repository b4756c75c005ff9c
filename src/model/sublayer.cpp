// SPDX-License-Identifier: Apache-2.0
// The sublayer modules: grouped-query attention with RoPE and the SwiGLU MLP.
#include "sublayer.hpp"

#include <iterator>

#include "hnas/core/check.hpp"
#include "hnas/model/hybrid_model.hpp"

namespace hnas::model {
namespace {

class AttentionSublayer : public SublayerImpl {
 public:
  AttentionSublayer(const arch::ModelShape& s, Kernels kernels)
      : shape_{s.num_heads, s.num_kv_heads, s.head_dim}, kernels_(kernels) {
    norm_ = register_module("norm", RmsNorm(s.d_model, s.norm_eps, kernels));
    const int64_t qkv_width = (s.num_heads + 2 * s.num_kv_heads) * s.head_dim;
    qkv_ = register_module("qkv",
                           torch::nn::Linear(torch::nn::LinearOptions(s.d_model, qkv_width).bias(s.attention_bias)));
    out_ = register_module(
        "out", torch::nn::Linear(torch::nn::LinearOptions(s.num_heads * s.head_dim, s.d_model).bias(s.attention_bias)));
  }

  torch::Tensor forward(const torch::Tensor& x, const SublayerContext& context) override {
    auto qkv = project(norm_->forward(x), qkv_->weight, qkv_->bias);
    if (context.cache != nullptr)
      return project(cached_attention(qkv, shape_, context.rope, context.cache->k, context.cache->v, context.position),
                     out_->weight, out_->bias);
    return project(causal_attention(qkv, shape_, context.rope, kernels_), out_->weight, out_->bias);
  }

 private:
  AttentionShape shape_;
  Kernels kernels_;
  RmsNorm norm_{nullptr};
  torch::nn::Linear qkv_{nullptr}, out_{nullptr};
};

class MlpSublayer : public SublayerImpl {
 public:
  MlpSublayer(const arch::ModelShape& s, Kernels kernels) : kernels_(kernels) {
    norm_ = register_module("norm", RmsNorm(s.d_model, s.norm_eps, kernels));
    // Gate and up projections in one product: [gate | up].
    gate_up_ = register_module("gate_up",
                               torch::nn::Linear(torch::nn::LinearOptions(s.d_model, 2 * s.mlp_hidden).bias(false)));
    down_ = register_module("down", torch::nn::Linear(torch::nn::LinearOptions(s.mlp_hidden, s.d_model).bias(false)));
  }

  torch::Tensor forward(const torch::Tensor& x, const SublayerContext& /*context*/) override {
    return project(swiglu(project(norm_->forward(x), gate_up_->weight), kernels_), down_->weight);
  }

 private:
  Kernels kernels_;
  RmsNorm norm_{nullptr};
  torch::nn::Linear gate_up_{nullptr}, down_{nullptr};
};

using SublayerFactory = std::shared_ptr<SublayerImpl> (*)(const arch::ModelShape&, Kernels);

template <class T>
std::shared_ptr<SublayerImpl> build(const arch::ModelShape& shape, Kernels kernels) {
  return std::make_shared<T>(shape, kernels);
}

// Indexed by arch::Primitive, in registry order.
constexpr SublayerFactory kFactories[] = {
    build<AttentionSublayer>,  // Primitive::Attention
    build<MlpSublayer>,        // Primitive::Mlp
};

}  // namespace

std::shared_ptr<SublayerImpl> make_sublayer(arch::Primitive p, const arch::ModelShape& shape, Kernels kernels) {
  static_assert(std::size(kFactories) == arch::kNumPrimitives, "one module factory per primitive, in Primitive order");
  const auto index = static_cast<size_t>(p);
  HNAS_ASSERT(index < std::size(kFactories), "no module factory for primitive " << index);
  return kFactories[index](shape, kernels);
}

}  // namespace hnas::model
