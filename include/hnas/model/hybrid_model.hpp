// SPDX-License-Identifier: Apache-2.0
// HybridModel: a token embedding, one pre-norm residual sublayer per genome letter
// (x = x + f(RMSNorm(x))), then either the language-model head (final RMSNorm + linear,
// tied or untied) or MAD's compression auto-encoder decoder. Knows nothing of MPI or HDF5.
// Rank-local: a model lives on one process (data parallelism is applied from train/).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "hnas/arch/genome.hpp"
#include "hnas/arch/model_shape.hpp"
#include "hnas/model/ops.hpp"

namespace hnas::model {

/// Learned-gain RMS normalisation over the last dimension.
class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t dim, double eps, Kernels kernels);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;

 private:
  double eps_;
  Kernels kernels_;
};
TORCH_MODULE(RmsNorm);

/// How parameters are initialised.
enum class InitScheme {
  Llama,  ///< every weight N(0, 0.02), biases 0, norm gains 1
  Mad,    ///< as MAD-lab: embeddings N(0, 0.02), Linear weights PyTorch default, biases 0
};

/// Keys and values of every attention layer for incremental decoding (the MLP layers keep
/// nothing): K and V of attention layer i are [batch, kv_heads, capacity, head_dim].
struct KvCache {
  struct Layer {
    at::Tensor k, v;
  };
  std::vector<Layer> layers;  ///< one per attention layer, in layer order
  int64_t length = 0;         ///< positions filled
  int64_t capacity = 0;
  /// Bytes the cache holds per token of one sequence.
  int64_t bytes_per_token() const;
};

struct HybridModelOptions {
  arch::Genome genome;
  arch::ModelShape shape;
  Kernels kernels = Kernels::Fused;
  InitScheme init = InitScheme::Llama;
  uint64_t seed = 0;  ///< initialisation seed: the same seed gives the same weights
  /// Activation checkpointing: a training forward keeps only each sublayer's input, and the
  /// backward pass runs the sublayer's forward again (a third more FLOPs) to get the rest.
  bool recompute = false;
};

class HybridModelImpl : public torch::nn::Module {
 public:
  explicit HybridModelImpl(HybridModelOptions options);

  /// tokens: [B, T] int64 -> logits [B, T, V] (LanguageModel) or [B, max_seq_len, V]
  /// (AutoEncoder, decoded from the hidden state at the last input position).
  torch::Tensor forward(const torch::Tensor& tokens);

  /// An empty cache for `batch` sequences of up to `capacity` positions, on the model's
  /// device and in its dtype. LanguageModel only.
  KvCache make_kv_cache(int64_t batch, int64_t capacity) const;
  /// Logits [B, T, V] of `tokens` [B, T] continuing the sequences in `cache` (positions
  /// cache.length onwards), whose keys and values are appended: a prefill when the cache
  /// is empty, a decode step for T = 1. Throws ConfigError when the cache would overflow.
  torch::Tensor forward(const torch::Tensor& tokens, KvCache& cache);

  const HybridModelOptions& options() const { return options_; }
  /// Sum of numel over parameters (equals arch::count_parameters(...).total).
  int64_t num_parameters() const;
  /// Sequence length the rotary tables currently cover (they grow on demand).
  int64_t rope_length() const { return rope_.cos.defined() ? rope_.cos.size(0) : 0; }

 private:
  torch::Tensor decode(const torch::Tensor& pooled);
  const RopeTable& rope_for(int64_t seq_len, const torch::Device& device);

  HybridModelOptions options_;
  torch::nn::Embedding embedding_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  RmsNorm final_norm_{nullptr};
  torch::nn::Linear head_{nullptr};
  // AutoEncoder decoder: (norm, Linear, GELU) x 2, norm, Linear to vocab.
  torch::nn::ModuleList decoder_{nullptr};
  torch::Tensor decoder_positions_;  // fixed sinusoidal table [max_seq_len, d_model], a buffer
  RopeTable rope_;
};
TORCH_MODULE(HybridModel);

}  // namespace hnas::model
