// SPDX-License-Identifier: Apache-2.0
#include "hnas/model/hybrid_model.hpp"

#include <ATen/autocast_mode.h>

#include <cmath>

#include "hnas/core/check.hpp"
#include "sublayer.hpp"

namespace hnas::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// One sublayer under activation checkpointing: the forward runs without autograd and
// keeps only the input; the backward runs it again with autograd (under the autocast
// state of the forward) and differentiates that. The sublayer and the rotary tables
// belong to the model, which outlives the step's backward pass.
struct RecomputedSublayer : public torch::autograd::Function<RecomputedSublayer> {
  // `parameters` are inputs (a TensorList is flattened into them) so that their gradients
  // reach them through this node.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, at::TensorList parameters,
                               SublayerImpl* layer, const RopeTable* rope) {
    ctx->save_for_backward({x});
    ctx->saved_data["layer"] = reinterpret_cast<int64_t>(layer);
    ctx->saved_data["rope"] = reinterpret_cast<int64_t>(rope);
    ctx->saved_data["autocast"] = at::autocast::is_enabled();
    ctx->saved_data["parameters"] = static_cast<int64_t>(parameters.size());
    return layer->forward(x, SublayerContext{*rope});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto* layer = reinterpret_cast<SublayerImpl*>(ctx->saved_data["layer"].toInt());
    const auto* rope = reinterpret_cast<const RopeTable*>(ctx->saved_data["rope"].toInt());
    const auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    const auto parameters = layer->parameters();
    torch::Tensor out;
    {
      const torch::AutoGradMode with_autograd(true);
      const bool autocast_was = at::autocast::is_enabled();
      at::autocast::set_enabled(ctx->saved_data["autocast"].toBool());
      out = layer->forward(x, SublayerContext{*rope});
      at::autocast::clear_cache();
      at::autocast::set_enabled(autocast_was);
    }
    variable_list inputs{x};
    inputs.insert(inputs.end(), parameters.begin(), parameters.end());
    auto computed = torch::autograd::grad({out}, inputs, {grads[0]}, /*retain_graph=*/false, /*create_graph=*/false,
                                          /*allow_unused=*/true);
    computed.push_back(torch::autograd::Variable());  // layer
    computed.push_back(torch::autograd::Variable());  // rope
    return computed;
  }
};

}  // namespace

RmsNormImpl::RmsNormImpl(int64_t dim, double eps, Kernels kernels) : eps_(eps), kernels_(kernels) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) { return rms_norm(x, weight, eps_, kernels_); }

namespace {

// Fixed sinusoidal position table of MAD's auto-encoder decoder (fairseq layout):
// with h = d/2 frequencies f_i = exp(-i ln(10000) / (h - 1)), row p = [sin(p f), cos(p f)].
torch::Tensor sinusoidal_positions(int64_t length, int64_t d_model) {
  const int64_t half = d_model / 2;
  const double step = half > 1 ? std::log(10000.0) / static_cast<double>(half - 1) : 0.0;
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto freqs = torch::exp(torch::arange(half, f64) * -step);
  auto angles = torch::outer(torch::arange(length, f64), freqs);
  return torch::cat({torch::sin(angles), torch::cos(angles)}, 1).to(torch::kFloat32);
}

}  // namespace

HybridModelImpl::HybridModelImpl(HybridModelOptions options) : options_(std::move(options)) {
  const arch::ModelShape& s = options_.shape;
  s.validate();
  HNAS_CHECK(!options_.genome.empty(), ConfigError, "the architecture has no layers");

  embedding_ = register_module("embedding", torch::nn::Embedding(s.vocab_size, s.d_model));
  layers_ = register_module("layers", torch::nn::ModuleList());
  for (arch::Primitive p : options_.genome.layers()) layers_->push_back(make_sublayer(p, s, options_.kernels));

  if (s.backbone == arch::Backbone::LanguageModel) {
    final_norm_ = register_module("final_norm", RmsNorm(s.d_model, s.norm_eps, options_.kernels));
    if (!s.tie_embeddings)
      head_ = register_module("head",
                              torch::nn::Linear(torch::nn::LinearOptions(s.d_model, s.vocab_size).bias(s.head_bias)));
  } else {
    decoder_ = register_module("decoder", torch::nn::ModuleList());
    for (int i = 0; i < 2; ++i) {
      decoder_->push_back(RmsNorm(s.d_model, s.norm_eps, options_.kernels));
      decoder_->push_back(torch::nn::Linear(s.d_model, s.d_model));
    }
    decoder_->push_back(RmsNorm(s.d_model, s.norm_eps, options_.kernels));
    decoder_->push_back(torch::nn::Linear(s.d_model, s.vocab_size));
    decoder_positions_ = register_buffer("decoder_positions", sinusoidal_positions(s.max_seq_len, s.d_model));
  }

  // Deterministic initialisation from the seed, independent of LibTorch's global generator.
  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(options_.seed);
  // MAD-lab keeps PyTorch's default Linear init in the language model but uses N(0, 0.02)
  // everywhere in the auto-encoder.
  const bool normal_linears = options_.init == InitScheme::Llama || s.backbone == arch::Backbone::AutoEncoder;
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* norm = module->as<RmsNormImpl>()) {
      norm->weight.fill_(1.0);
    } else if (auto* embedding = module->as<torch::nn::EmbeddingImpl>()) {
      embedding->weight.normal_(0.0, 0.02, generator);
    } else if (auto* linear = module->as<torch::nn::LinearImpl>()) {
      if (normal_linears) {
        linear->weight.normal_(0.0, 0.02, generator);
      } else {
        const double bound = 1.0 / std::sqrt(static_cast<double>(linear->weight.size(1)));
        linear->weight.uniform_(-bound, bound, generator);
      }
      if (linear->bias.defined()) linear->bias.zero_();
    }
  }
}

const RopeTable& HybridModelImpl::rope_for(int64_t seq_len, const torch::Device& device) {
  if (!rope_.cos.defined() || rope_.cos.size(0) < seq_len || rope_.cos.device() != device) {
    const int64_t length = std::max(seq_len, options_.shape.max_seq_len);
    rope_ = make_rope_table(length, options_.shape.head_dim, options_.shape.rope_theta,
                            torch::TensorOptions().device(device));
  }
  return rope_;
}

torch::Tensor HybridModelImpl::forward(const torch::Tensor& tokens) {
  HNAS_CHECK(tokens.dim() == 2, InternalError, "HybridModel expects tokens [batch, seq], got " << tokens.sizes());
  const SublayerContext context{rope_for(tokens.size(1), tokens.device())};
  auto x = embedding_->forward(tokens);
  const bool recompute = options_.recompute && torch::GradMode::is_enabled();
  for (const auto& layer : *layers_) {
    auto* sublayer = layer->as<SublayerImpl>();
    const auto parameters = sublayer->parameters();
    x = x + (recompute ? RecomputedSublayer::apply(x, at::TensorList(parameters), sublayer, &context.rope)
                       : sublayer->forward(x, context));
  }

  if (options_.shape.backbone == arch::Backbone::AutoEncoder) return decode(x.select(1, -1));
  x = final_norm_->forward(x);
  return options_.shape.tie_embeddings ? project(x, embedding_->weight) : project(x, head_->weight, head_->bias);
}

int64_t KvCache::bytes_per_token() const {
  int64_t bytes = 0;
  for (const auto& layer : layers)
    bytes += 2 * layer.k.size(1) * layer.k.size(3) * static_cast<int64_t>(layer.k.element_size());
  return bytes;
}

KvCache HybridModelImpl::make_kv_cache(int64_t batch, int64_t capacity) const {
  HNAS_CHECK(options_.shape.backbone == arch::Backbone::LanguageModel, InternalError,
             "a KV cache needs a language model");
  const auto& s = options_.shape;
  const auto like = embedding_->weight.options();
  KvCache cache;
  cache.capacity = capacity;
  for (arch::Primitive p : options_.genome.layers())
    if (p == arch::Primitive::Attention)
      cache.layers.push_back({torch::zeros({batch, s.num_kv_heads, capacity, s.head_dim}, like),
                              torch::zeros({batch, s.num_kv_heads, capacity, s.head_dim}, like)});
  return cache;
}

torch::Tensor HybridModelImpl::forward(const torch::Tensor& tokens, KvCache& cache) {
  HNAS_CHECK(tokens.dim() == 2, InternalError, "HybridModel expects tokens [batch, seq], got " << tokens.sizes());
  HNAS_CHECK(cache.length + tokens.size(1) <= cache.capacity, ConfigError,
             "the sequence would exceed the KV cache's " << cache.capacity << " positions");
  SublayerContext context{rope_for(cache.length + tokens.size(1), tokens.device()), nullptr, cache.length};
  auto x = embedding_->forward(tokens);
  size_t attention = 0;
  for (size_t i = 0; i < layers_->size(); ++i) {
    const bool is_attention = options_.genome[i] == arch::Primitive::Attention;
    context.cache = is_attention ? &cache.layers[attention++] : nullptr;
    x = x + (*layers_)[i]->as<SublayerImpl>()->forward(x, context);
  }
  cache.length += tokens.size(1);
  x = final_norm_->forward(x);
  return options_.shape.tie_embeddings ? project(x, embedding_->weight) : project(x, head_->weight, head_->bias);
}

torch::Tensor HybridModelImpl::decode(const torch::Tensor& pooled) {
  auto h = pooled.unsqueeze(1) + decoder_positions_.unsqueeze(0);  // [B, L, d]
  const auto& modules = *decoder_;
  for (size_t i = 0; i + 1 < modules.size(); i += 2) {
    h = modules[i + 1]->as<torch::nn::LinearImpl>()->forward(modules[i]->as<RmsNormImpl>()->forward(h));
    if (i + 2 < modules.size()) h = torch::gelu(h);
  }
  return h;
}

int64_t HybridModelImpl::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

}  // namespace hnas::model
