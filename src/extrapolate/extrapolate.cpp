// SPDX-License-Identifier: Apache-2.0
// Stacking, stretching and the cost of an extrapolated architecture.
#include "hnas/extrapolate/extrapolate.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "hnas/arch/primitive.hpp"
#include "hnas/core/check.hpp"

namespace hnas::extrapolate {
namespace {

using arch::Genome;
using arch::Primitive;

// Products like 1.5 * 2 or M/m computed from integers can land a hair off an integer;
// rounding must not turn such noise into an extra layer or a missing copy.
constexpr double kTolerance = 1e-9;

double tolerant_ceil(double x) { return std::ceil(x - kTolerance * std::fabs(x)); }
double tolerant_floor(double x) { return std::floor(x + kTolerance * std::fabs(x)); }

constexpr size_t kMaxLayers = Genome::kMaxLayers;

std::string label(const TargetShape& t) { return "target " + (t.name.empty() ? std::string("custom") : t.name); }

// Letters for short genomes, run-length for long ones, so a message stays one readable line.
std::string display(const Genome& g) { return g.size() <= 64 ? g.to_string() : g.to_run_length(); }

std::string joined_letters(const std::string& letters) {
  std::string out;
  for (char c : letters) {
    if (!out.empty()) out += ", ";
    out += c;
  }
  return out;
}

// Every layer of `genome` must be a primitive the target has dimensions for.
void check_primitives(const Genome& genome, const TargetShape& target) {
  for (size_t i = 0; i < genome.size(); ++i) {
    const char letter = arch::primitive_info(genome[i]).letter;
    HNAS_CHECK(target.primitives.find(letter) != std::string::npos, ConfigError,
               "architecture " << display(genome) << " has primitive '" << letter << "' at layer " << i + 1
                               << ", which " << label(target) << " does not define (it defines "
                               << joined_letters(target.primitives) << ")");
  }
}

}  // namespace

const char* method_name(Method m) {
  switch (m) {
    case Method::Stack:
      return "stack";
    case Method::Stretch:
      return "stretch";
    case Method::Width:
      return "width";
  }
  return "unknown";
}

int64_t trunk_parameters(const Genome& genome, const arch::ModelShape& shape) {
  int64_t n = 0;
  for (Primitive p : genome.layers()) n += arch::primitive_info(p).parameters(shape);
  return n;
}

Genome stretch(const Genome& genome, double factor) {
  HNAS_CHECK(std::isfinite(factor) && factor > 0, ConfigError,
             "stretch factor must be a positive number, got " << factor);
  std::vector<Primitive> layers;
  for (size_t i = 0; i < genome.size();) {
    size_t j = i;
    while (j < genome.size() && genome[j] == genome[i]) ++j;
    // The ceiling of a positive product is already >= 1; the max states the invariant.
    const double run = std::max(1.0, tolerant_ceil(factor * static_cast<double>(j - i)));
    // Compared as a double first: a huge factor must not overflow the cast.
    HNAS_CHECK(run + static_cast<double>(layers.size()) <= static_cast<double>(kMaxLayers), ConfigError,
               "stretching " << display(genome) << " by " << factor << " gives more than " << kMaxLayers << " layers");
    layers.insert(layers.end(), static_cast<size_t>(run), genome[i]);
    i = j;
  }
  return Genome(std::move(layers));
}

Extrapolation extrapolate(const Genome& source, Method method, const TargetShape& target) {
  target.validate();
  HNAS_CHECK(!source.empty(), ConfigError, "cannot extrapolate an empty architecture to " << label(target));
  check_primitives(source, target);

  Extrapolation x;
  x.source = source;
  x.source_size = trunk_parameters(source, target.shape);
  x.target_size = trunk_parameters(baseline_genome(target), target.shape);
  // m > 0: every layer has at least its pre-norm gain (d_model >= 1).
  const double m = static_cast<double>(x.source_size);
  x.scale_factor = static_cast<double>(x.target_size) / m;

  const auto depth = static_cast<size_t>(2 * target.blocks);
  if (source.size() == depth) {
    x.method = Method::Width;
    x.result = source;
    return x;
  }
  HNAS_CHECK(method != Method::Width, ConfigError,
             "method width needs an architecture of the target depth (2 x extrapolate.blocks = "
                 << depth << " layers for " << label(target) << "), but " << display(source) << " has " << source.size()
                 << "; use stack or stretch");
  x.method = method;
  if (method == Method::Stretch) {
    x.result = stretch(source, x.scale_factor);
    return x;
  }

  x.copies = static_cast<int64_t>(tolerant_floor(x.scale_factor));
  // The remainder is exact in integers; the tolerance can only make it slightly negative
  // (M/m a hair below an integer), which means no remainder.
  const int64_t remainder = x.target_size - x.source_size * x.copies;
  x.remainder_fraction = static_cast<double>(remainder) / m;
  if (x.remainder_fraction <= kTolerance * x.scale_factor) x.remainder_fraction = 0;

  HNAS_CHECK(static_cast<double>(x.copies) * static_cast<double>(source.size()) <= static_cast<double>(kMaxLayers),
             ConfigError,
             "stacking " << x.copies << " copies of " << display(source) << " for " << label(target)
                         << " gives more than " << kMaxLayers << " layers");
  std::vector<Primitive> layers;
  layers.reserve(static_cast<size_t>(x.copies) * source.size());
  for (int64_t c = 0; c < x.copies; ++c) layers.insert(layers.end(), source.layers().begin(), source.layers().end());
  if (x.remainder_fraction > 0) {
    const Genome tail = stretch(source, x.remainder_fraction);
    HNAS_CHECK(
        layers.size() + tail.size() <= kMaxLayers, ConfigError,
        "stacking " << display(source) << " for " << label(target) << " gives more than " << kMaxLayers << " layers");
    layers.insert(layers.end(), tail.layers().begin(), tail.layers().end());
  }
  x.result = Genome(std::move(layers));
  return x;
}

ArchitectureCost cost_of(const Genome& genome, const TargetShape& target) {
  target.validate();
  check_primitives(genome, target);
  ArchitectureCost cost;
  cost.layers = static_cast<int64_t>(genome.size());
  cost.attention_layers = static_cast<int64_t>(genome.count(Primitive::Attention));
  cost.mlp_layers = static_cast<int64_t>(genome.count(Primitive::Mlp));
  cost.parameters = arch::count_parameters(genome, target.shape);
  // Every attention layer caches one K and one V vector per KV head for each token.
  const int64_t kv_values = cost.attention_layers * 2 * target.shape.num_kv_heads * target.shape.head_dim;
  cost.kv_cache_bytes_per_token_bf16 = kv_values * 2;
  cost.kv_cache_bytes_per_token_fp32 = kv_values * 4;
  cost.forward_flops_per_token = arch::forward_flops_per_token(genome, target.shape, target.context_length);
  return cost;
}

std::string megatron_pattern(const Genome& genome) {
  std::string out;
  out.reserve(genome.size());
  for (size_t i = 0; i < genome.size(); ++i) {
    switch (genome[i]) {
      case Primitive::Attention:
        out += '*';
        break;
      case Primitive::Mlp:
        out += '-';
        break;
      default:
        throw ConfigError("primitive '" + std::string(1, arch::primitive_info(genome[i]).letter) + "' at layer " +
                          std::to_string(i + 1) + " has no Megatron-LM hybrid_override_pattern symbol");
    }
  }
  return out;
}

}  // namespace hnas::extrapolate
