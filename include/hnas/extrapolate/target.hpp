// SPDX-License-Identifier: Apache-2.0
// Target shapes of the extrapolator: the width, depth and published size of the model a
// searched architecture is scaled up to, and the presets (Bae et al.'s Llama-3.2-style
// configurations and the released Meta models).
// Pure values and functions: callable from any rank or thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hnas/arch/genome.hpp"
#include "hnas/arch/model_shape.hpp"

namespace hnas::extrapolate {

/// A model to extrapolate to: a Llama-layout baseline ("AM" x blocks) at `shape`.
struct TargetShape {
  std::string name;         ///< "1B", "llama3.2-1B", "custom"
  std::string description;  ///< one line, e.g. "Llama-3.2-style 1B of Bae et al. (Composer's companion paper)"
  /// LanguageModel backbone, no biases; vocab, d_model, heads, kv_heads, head_dim, mlp_hidden,
  /// rope_theta, tie_embeddings.
  arch::ModelShape shape;
  int64_t blocks = 0;             ///< the baseline is "AM" repeated `blocks` times (Llama layout)
  int64_t context_length = 8192;  ///< sequence length for FLOPs per token
  /// Published sizes in parameters (0.10B is 1.0e8), as the source states them; 0 when not stated.
  double published_non_embedding = 0;
  double published_total = 0;
  int published_digits = 0;       ///< significant digits of the published figure (0.10B -> 2, 1.23B -> 3)
  std::string source;             ///< where the figures come from
  std::string primitives = "AM";  ///< primitive letters this target has dimensions for

  /// Throws ConfigError naming the first bad field as "extrapolate.<key>": the shape's own
  /// checks (heads a multiple of kv_heads, ...), a non-LanguageModel backbone, blocks outside
  /// [1, Genome::kMaxLayers / 2], context_length < 1, and primitives that are empty, repeated
  /// or not registered.
  void validate() const;
};

/// The presets, in this order: 100M, 350M, 1B, 3B, llama3.2-1B, llama3.2-3B, llama3.1-8B.
const std::vector<TargetShape>& target_presets();

/// The preset called `name` (exact match). Throws ConfigError listing the presets when there is none.
const TargetShape& target_preset(const std::string& name);

/// "100M, 350M, 1B, 3B, llama3.2-1B, llama3.2-3B, llama3.1-8B": for messages and help.
std::string preset_names();

/// The Llama-layout baseline of `target`: "AM" repeated target.blocks times. Throws ConfigError
/// when blocks is outside [1, Genome::kMaxLayers / 2].
arch::Genome baseline_genome(const TargetShape& target);

}  // namespace hnas::extrapolate
