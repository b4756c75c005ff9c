// SPDX-License-Identifier: Apache-2.0
#include "hnas/arch/model_shape.hpp"

#include "hnas/core/check.hpp"
#include "hnas/core/log.hpp"

namespace hnas::arch {

void ModelShape::validate() const {
  HNAS_CHECK(vocab_size >= 2, ConfigError, "model.vocab_size must be at least 2, got " << vocab_size);
  HNAS_CHECK(d_model >= 1, ConfigError, "model.d_model must be positive, got " << d_model);
  HNAS_CHECK(num_heads >= 1, ConfigError, "model.heads must be positive, got " << num_heads);
  HNAS_CHECK(num_kv_heads >= 1 && num_kv_heads <= num_heads, ConfigError,
             "model.kv_heads must be in [1, heads=" << num_heads << "], got " << num_kv_heads);
  HNAS_CHECK(num_heads % num_kv_heads == 0, ConfigError,
             "model.heads (" << num_heads << ") must be a multiple of model.kv_heads (" << num_kv_heads << ")");
  HNAS_CHECK(head_dim >= 2 && head_dim % 2 == 0, ConfigError,
             "model.head_dim must be even and at least 2 (rotary embedding rotates pairs), got " << head_dim);
  HNAS_CHECK(mlp_hidden >= 1, ConfigError, "model.mlp_hidden must be positive, got " << mlp_hidden);
  HNAS_CHECK(rope_theta > 0, ConfigError, "model.rope_theta must be positive, got " << rope_theta);
  HNAS_CHECK(norm_eps > 0, ConfigError, "model.norm_eps must be positive, got " << norm_eps);
  HNAS_CHECK(!(tie_embeddings && head_bias), ConfigError,
             "model.head_bias requires an untied head (model.tie_embeddings = false)");
  HNAS_CHECK(backbone != Backbone::AutoEncoder || d_model % 2 == 0, ConfigError,
             "the auto-encoder's sinusoidal decoder needs an even model.d_model, got " << d_model);
  HNAS_CHECK(max_seq_len >= 1, ConfigError, "max_seq_len must be positive, got " << max_seq_len);
}

std::string ModelShape::describe() const {
  return log::format("d_model=%ld heads=%ld/%ldx%ld mlp=%ld vocab=%ld %s%s", static_cast<long>(d_model),
                     static_cast<long>(num_heads), static_cast<long>(num_kv_heads), static_cast<long>(head_dim),
                     static_cast<long>(mlp_hidden), static_cast<long>(vocab_size), tie_embeddings ? "tied" : "untied",
                     backbone == Backbone::AutoEncoder ? " autoencoder" : "");
}

int64_t mad_swiglu_hidden(int64_t d_model) {
  const int64_t raw = (8 * d_model) / 3;
  return 16 * ((raw + 15) / 16);
}

ParameterCount count_parameters(const Genome& genome, const ModelShape& s) {
  int64_t trunk = 0;
  for (Primitive p : genome.layers()) trunk += primitive_info(p).parameters(s);
  const int64_t embedding = s.vocab_size * s.d_model;
  ParameterCount count;
  if (s.backbone == Backbone::LanguageModel) {
    const int64_t head = s.tie_embeddings ? 0 : s.vocab_size * s.d_model + (s.head_bias ? s.vocab_size : 0);
    count.non_embedding = trunk + s.d_model;  // + final norm
    count.total = count.non_embedding + embedding + head;
  } else {
    // Decoder: (norm, Linear d->d, GELU) x 2, then norm and the output Linear d->V; all Linears biased.
    const int64_t head = s.vocab_size * s.d_model + s.vocab_size;
    count.non_embedding = trunk + 3 * s.d_model + 2 * (s.d_model * s.d_model + s.d_model);
    count.total = count.non_embedding + embedding + head;
  }
  return count;
}

double forward_flops_per_token(Primitive p, const ModelShape& shape, int64_t seq_len) {
  return primitive_info(p).forward_flops_per_token(shape, seq_len);
}

double forward_flops_per_token(const Genome& genome, const ModelShape& s, int64_t seq_len) {
  double flops = 0;
  for (Primitive p : genome.layers()) flops += forward_flops_per_token(p, s, seq_len);
  const double d = static_cast<double>(s.d_model);
  flops += 2.0 * d * static_cast<double>(s.vocab_size);  // LM head / decoder output projection
  if (s.backbone == Backbone::AutoEncoder) flops += 2.0 * 2.0 * d * d;
  return flops;
}

}  // namespace hnas::arch
