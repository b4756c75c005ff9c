// SPDX-License-Identifier: Apache-2.0
// The extrapolator (paper digest section 6): scales a searched small architecture to a
// target's depth by stacking copies of it or stretching its runs, sized in trunk parameters
// at the target's width; and the costs (parameters, KV cache, FLOPs) of the result.
// Pure arithmetic, no LibTorch: callable from any rank or thread.
#pragma once

#include <cstdint>
#include <string>

#include "hnas/arch/genome.hpp"
#include "hnas/arch/model_shape.hpp"
#include "hnas/extrapolate/target.hpp"

namespace hnas::extrapolate {

/// How the depth is scaled. Width: the source already has the target depth (2 * blocks
/// layers), so only the width changes.
enum class Method { Stack, Stretch, Width };

/// "stack", "stretch", "width".
const char* method_name(Method m);

/// Sum over layers of each layer's parameters at the target's width (its pre-norm included;
/// no embedding, no head, no final norm): the size unit of the formulas. Nothing thrown.
int64_t trunk_parameters(const arch::Genome& genome, const arch::ModelShape& shape);

/// Lengthens every maximal run of one primitive: h -> ceil(factor * h) (with a 1e-9 relative
/// tolerance so 2.0000000001 gives 2). Every run keeps at least 1 layer. Throws ConfigError
/// when factor is not a positive finite number or the result exceeds Genome::kMaxLayers.
arch::Genome stretch(const arch::Genome& genome, double factor);

struct Extrapolation {
  arch::Genome source, result;
  Method method = Method::Stack;  ///< what was applied (Width when source.size() == 2*blocks, whatever was asked)
  int64_t source_size = 0;        ///< m: trunk_parameters(source, target.shape)
  int64_t target_size = 0;        ///< M: trunk_parameters(baseline_genome(target), target.shape)
  double scale_factor = 0;        ///< M / m
  int64_t copies = 0;             ///< stacking: floor(M/m) (same tolerance); 0 for stretch and width
  /// Stacking: (M - m*copies) / m, the factor of the appended stretched copy (0: none).
  double remainder_fraction = 0;
};

/// Stacking (copies of the source block, then stretch(source, remainder_fraction) appended
/// when the remainder is non-zero; when copies == 0 the result is just that stretched copy)
/// or stretching (stretch(source, M/m)), per paper-digest section 6. A source that already
/// has 2 * blocks layers is returned as it is, with Method::Width.
/// Throws ConfigError when the target is invalid (TargetShape::validate), the source is
/// empty, `method` is Width but the source is not 2 * blocks layers deep, the result exceeds
/// Genome::kMaxLayers, or the source uses a primitive the target does not define
/// ("architecture X has primitive 'Q' at layer 3, which target T does not define (it defines A, M)").
Extrapolation extrapolate(const arch::Genome& source, Method method, const TargetShape& target);

struct ArchitectureCost {
  int64_t layers = 0, attention_layers = 0, mlp_layers = 0;
  arch::ParameterCount parameters;            ///< arch::count_parameters at target.shape
  int64_t kv_cache_bytes_per_token_bf16 = 0;  ///< attention layers x 2 (K and V) x kv_heads x head_dim x 2 bytes
  int64_t kv_cache_bytes_per_token_fp32 = 0;  ///< same with 4 bytes
  double forward_flops_per_token = 0;         ///< arch::forward_flops_per_token at target.context_length
};

/// The costs of `genome` built at `target`'s width. Throws ConfigError when the target is
/// invalid or the genome uses a primitive the target does not define.
ArchitectureCost cost_of(const arch::Genome& genome, const TargetShape& target);

/// Megatron-LM hybrid models' hybrid_override_pattern: '*' attention, '-' MLP, one character
/// per layer ("AAMM" -> "**--"). Throws ConfigError for a primitive without a Megatron symbol.
std::string megatron_pattern(const arch::Genome& genome);

}  // namespace hnas::extrapolate
