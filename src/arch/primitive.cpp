// SPDX-License-Identifier: Apache-2.0
// The primitive table: the one place that says what each primitive costs.
#include "hnas/arch/primitive.hpp"

#include <iterator>

#include "hnas/arch/model_shape.hpp"
#include "hnas/core/check.hpp"

namespace hnas::arch {
namespace {

int64_t attention_parameters(const ModelShape& s) {
  const int64_t qkv_out = (s.num_heads + 2 * s.num_kv_heads) * s.head_dim;
  const int64_t attn_width = s.num_heads * s.head_dim;
  int64_t n = s.d_model;  // pre-norm gain
  n += s.d_model * qkv_out + attn_width * s.d_model;
  if (s.attention_bias) n += qkv_out + s.d_model;
  return n;
}

double attention_flops(const ModelShape& s, int64_t seq_len) {
  const double qkv_out = static_cast<double>((s.num_heads + 2 * s.num_kv_heads) * s.head_dim);
  const double attn_width = static_cast<double>(s.num_heads * s.head_dim);
  const double mean_context = (static_cast<double>(seq_len) + 1.0) / 2.0;  // causal
  const double d = static_cast<double>(s.d_model);
  return 2.0 * d * qkv_out + 2.0 * attn_width * d + 2.0 * 2.0 * attn_width * mean_context;
}

int64_t mlp_parameters(const ModelShape& s) {
  return s.d_model + 3 * s.d_model * s.mlp_hidden;  // pre-norm gain, gate+up, down
}

double mlp_flops(const ModelShape& s, int64_t /*seq_len*/) {
  return 6.0 * static_cast<double>(s.d_model) * static_cast<double>(s.mlp_hidden);
}

constexpr PrimitiveInfo kRows[] = {
    {Primitive::Attention, 'A', "attention", "grouped-query causal self-attention with rotary position embedding",
     attention_parameters, attention_flops},
    {Primitive::Mlp, 'M', "mlp", "SwiGLU MLP", mlp_parameters, mlp_flops},
};
static_assert(std::size(kRows) == kNumPrimitives, "one registry row per Primitive");

const std::vector<PrimitiveInfo> kRegistry(std::begin(kRows), std::end(kRows));

}  // namespace

const std::vector<PrimitiveInfo>& primitive_registry() { return kRegistry; }

const PrimitiveInfo& primitive_info(Primitive id) {
  const auto index = static_cast<size_t>(id);
  HNAS_ASSERT(index < kRegistry.size() && kRegistry[index].id == id, "unregistered primitive");
  return kRegistry[index];
}

const PrimitiveInfo* find_primitive(char letter) {
  for (const auto& info : kRegistry)
    if (info.letter == letter) return &info;
  return nullptr;
}

std::string registered_letters() {
  std::string out;
  for (const auto& info : kRegistry) {
    if (!out.empty()) out += ", ";
    out += std::string(1, info.letter) + " (" + info.name + ")";
  }
  return out;
}

}  // namespace hnas::arch
