// SPDX-License-Identifier: Apache-2.0
// Target presets and their validation.
#include "hnas/extrapolate/target.hpp"

#include "hnas/arch/primitive.hpp"
#include "hnas/core/check.hpp"

namespace hnas::extrapolate {
namespace {

constexpr int64_t kLlamaVocab = 128256;
constexpr double kLlamaRopeTheta = 500000.0;
const char* const kBaeSource = "Bae et al. (Composer's companion paper, same FAIR group), Llama-3.2-style config table";

struct PresetRow {
  const char* name;
  const char* description;
  int64_t blocks, d_model, mlp_hidden, heads, kv_heads, head_dim;
  bool tied;
  double published_non_embedding, published_total;
  int digits;
  const char* source;
};

// Digest section 8: Bae et al. state non-embedding sizes, Meta's model cards total sizes.
constexpr PresetRow kRows[] = {
    {"100M", "Llama-3.2-style 100M of Bae et al. (Composer's companion paper)", 8, 1024, 3072, 16, 4, 64, true, 0.10e9,
     0, 2, kBaeSource},
    {"350M", "Llama-3.2-style 350M of Bae et al. (Composer's companion paper)", 14, 1536, 4096, 24, 8, 64, true, 0.35e9,
     0, 2, kBaeSource},
    {"1B", "Llama-3.2-style 1B of Bae et al. (Composer's companion paper)", 16, 2048, 8192, 32, 8, 64, true, 0.97e9, 0,
     2, kBaeSource},
    {"3B", "Llama-3.2-style 3B of Bae et al. (Composer's companion paper)", 28, 3072, 8192, 32, 8, 96, true, 2.78e9, 0,
     3, kBaeSource},
    {"llama3.2-1B", "Meta Llama 3.2 1B as released", 16, 2048, 8192, 32, 8, 64, true, 0, 1.23e9, 3,
     "Meta Llama 3.2 model card (1.23B parameters)"},
    {"llama3.2-3B", "Meta Llama 3.2 3B as released (24 heads of 128)", 28, 3072, 8192, 24, 8, 128, true, 0, 3.21e9, 3,
     "Meta Llama 3.2 model card (3.21B parameters)"},
    {"llama3.1-8B", "Meta Llama 3.1 8B as released (untied head)", 32, 4096, 14336, 32, 8, 128, false, 0, 8.03e9, 3,
     "Meta Llama 3.1 model card (8.03B parameters)"},
};

TargetShape make_preset(const PresetRow& row) {
  TargetShape t;
  t.name = row.name;
  t.description = row.description;
  t.shape.vocab_size = kLlamaVocab;
  t.shape.d_model = row.d_model;
  t.shape.num_heads = row.heads;
  t.shape.num_kv_heads = row.kv_heads;
  t.shape.head_dim = row.head_dim;
  t.shape.mlp_hidden = row.mlp_hidden;
  t.shape.rope_theta = kLlamaRopeTheta;
  t.shape.norm_eps = 1e-5;
  t.shape.attention_bias = false;
  t.shape.head_bias = false;
  t.shape.tie_embeddings = row.tied;
  t.shape.backbone = arch::Backbone::LanguageModel;
  t.blocks = row.blocks;
  t.context_length = 8192;
  t.published_non_embedding = row.published_non_embedding;
  t.published_total = row.published_total;
  t.published_digits = row.digits;
  t.source = row.source;
  t.primitives = "AM";
  return t;
}

std::vector<TargetShape> make_presets() {
  std::vector<TargetShape> presets;
  for (const auto& row : kRows) presets.push_back(make_preset(row));
  return presets;
}

// Rewrites every "model." key of a ModelShape message as "extrapolate.": the target's
// width is configured under the extrapolate section, not the search model's.
std::string as_extrapolate_keys(std::string message) {
  const std::string from = "model.", to = "extrapolate.";
  for (size_t pos = message.find(from); pos != std::string::npos; pos = message.find(from, pos + to.size()))
    message.replace(pos, from.size(), to);
  return message;
}

constexpr int64_t kMaxBlocks = static_cast<int64_t>(arch::Genome::kMaxLayers / 2);

// How messages name a target: a custom one may have been left unnamed.
std::string label(const TargetShape& t) { return "target " + (t.name.empty() ? std::string("custom") : t.name); }

}  // namespace

void TargetShape::validate() const {
  try {
    shape.validate();
  } catch (const ConfigError& e) {
    throw ConfigError(label(*this) + ": " + as_extrapolate_keys(e.what()));
  }
  // The trunk formulas and the parameter counts assume an LM head on top.
  HNAS_CHECK(shape.backbone == arch::Backbone::LanguageModel, ConfigError,
             label(*this) << ": extrapolate targets are language models (the auto-encoder backbone is MAD-only)");
  HNAS_CHECK(blocks >= 1 && blocks <= kMaxBlocks, ConfigError,
             label(*this) << ": extrapolate.blocks must be in [1, " << kMaxBlocks << "], got " << blocks);
  HNAS_CHECK(context_length >= 1, ConfigError,
             label(*this) << ": extrapolate.context_length must be positive, got " << context_length);
  HNAS_CHECK(!primitives.empty(), ConfigError,
             label(*this) << ": extrapolate.primitives is empty; expected letters of " << arch::registered_letters());
  for (size_t i = 0; i < primitives.size(); ++i) {
    const char c = primitives[i];
    HNAS_CHECK(arch::find_primitive(c) != nullptr, ConfigError,
               label(*this) << ": extrapolate.primitives has unknown primitive '" << c << "'; registered are "
                            << arch::registered_letters());
    HNAS_CHECK(primitives.find(c) == i, ConfigError,
               label(*this) << ": extrapolate.primitives lists '" << c << "' twice");
  }
}

const std::vector<TargetShape>& target_presets() {
  static const std::vector<TargetShape> presets = make_presets();
  return presets;
}

const TargetShape& target_preset(const std::string& name) {
  for (const auto& t : target_presets())
    if (t.name == name) return t;
  throw ConfigError("unknown target \"" + name + "\"; the presets are " + preset_names() + " (or custom)");
}

std::string preset_names() {
  std::string out;
  for (const auto& t : target_presets()) {
    if (!out.empty()) out += ", ";
    out += t.name;
  }
  return out;
}

arch::Genome baseline_genome(const TargetShape& target) {
  HNAS_CHECK(target.blocks >= 1 && target.blocks <= kMaxBlocks, ConfigError,
             label(target) << ": extrapolate.blocks must be in [1, " << kMaxBlocks << "], got " << target.blocks);
  std::vector<arch::Primitive> layers;
  layers.reserve(static_cast<size_t>(2 * target.blocks));
  for (int64_t b = 0; b < target.blocks; ++b) {
    layers.push_back(arch::Primitive::Attention);
    layers.push_back(arch::Primitive::Mlp);
  }
  return arch::Genome(std::move(layers));
}

}  // namespace hnas::extrapolate
