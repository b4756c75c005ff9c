// SPDX-License-Identifier: Apache-2.0
// Width configuration of a hybrid model, and the parameter and FLOP counts that follow
// from a genome and a shape. Pure arithmetic: no LibTorch, usable by the extrapolator.
// Pure arithmetic: callable from any rank or thread.
#pragma once

#include <cstdint>
#include <string>

#include "hnas/arch/genome.hpp"

namespace hnas::arch {

/// What sits on top of the residual trunk.
enum class Backbone {
  LanguageModel,  ///< final norm + LM head: logits at every position
  AutoEncoder,    ///< MAD compression: last hidden state -> fixed-position MLP decoder
};

/// Widths shared by every layer of a model. Defaults are the MAD search scale
/// (d_model 128, 16 heads of 8, SwiGLU hidden 352).
struct ModelShape {
  int64_t vocab_size = 16;
  int64_t d_model = 128;
  int64_t num_heads = 16;
  int64_t num_kv_heads = 16;  ///< grouped-query attention when < num_heads
  int64_t head_dim = 8;       ///< num_heads * head_dim need not equal d_model
  int64_t mlp_hidden = 352;   ///< SwiGLU inner size
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  bool attention_bias = false;  ///< biases on the QKV and output projections
  bool head_bias = false;       ///< bias on the LM head (untied heads only)
  bool tie_embeddings = false;  ///< LM head shares the token embedding
  Backbone backbone = Backbone::LanguageModel;
  int64_t max_seq_len = 128;  ///< AutoEncoder decoder length (ignored by the LM)

  /// Throws ConfigError naming the first inconsistent field (e.g. heads % kv_heads != 0).
  void validate() const;
  /// "d_model=128 heads=16/4x8 mlp=352 vocab=16 untied": for logs.
  std::string describe() const;
};

/// SwiGLU hidden size as MAD sizes it: 16 * ceil(int(8 * d / 3) / 16) (352 at d = 128).
int64_t mad_swiglu_hidden(int64_t d_model);

struct ParameterCount {
  int64_t total = 0;          ///< every trainable parameter, equal to the model's numel
  int64_t non_embedding = 0;  ///< total minus token embedding and LM head (Kaplan convention)
};

/// Parameters of the model built from `genome` and `shape`.
ParameterCount count_parameters(const Genome& genome, const ModelShape& shape);

/// Forward FLOPs per token of the whole model at `seq_len`, LM head included.
/// Training costs about three times this (forward + backward).
double forward_flops_per_token(const Genome& genome, const ModelShape& shape, int64_t seq_len);

/// Forward FLOPs per token of one layer of primitive `p`.
double forward_flops_per_token(Primitive p, const ModelShape& shape, int64_t seq_len);

}  // namespace hnas::arch
