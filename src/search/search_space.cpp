// SPDX-License-Identifier: Apache-2.0
// The constraints only restrict the attention count and two layer positions, so the
// feasible set is described by per-layer allowed primitives plus a table of how many blocks
// have each attention count: counting, sampling and enumeration never scan the Z^n blocks.
#include "hnas/search/search_space.hpp"

#include <algorithm>
#include <cmath>

#include "hnas/core/check.hpp"

namespace hnas::search {
namespace {

using arch::Genome;
using arch::Primitive;

char letter(Primitive p) { return arch::primitive_info(p).letter; }

std::string letters(const std::vector<Primitive>& set) {
  std::string out;
  for (Primitive p : set) {
    if (!out.empty()) out += ", ";
    out += letter(p);
  }
  return out;
}

/// Z^n, or nullopt when it does not fit in 64 bits.
std::optional<uint64_t> power(uint64_t z, int64_t n) {
  uint64_t result = 1;
  for (int64_t i = 0; i < n; ++i)
    if (__builtin_mul_overflow(result, z, &result)) return std::nullopt;
  return result;
}

// Position in the candidate as users count layers.
std::string layer_name(size_t index) { return "layer " + std::to_string(index + 1); }

}  // namespace

SearchSpace::SearchSpace(SearchSpaceOptions options, Genome prefix, Genome suffix)
    : options_(std::move(options)), prefix_(std::move(prefix)), suffix_(std::move(suffix)) {
  const int64_t n = options_.num_layers;
  const auto& set = options_.primitives;
  HNAS_CHECK(n >= 1 && n <= 64, ConfigError, "search.num_layers must be in [1, 64], got " << n);
  HNAS_CHECK(!set.empty(), ConfigError, "search.primitives must name at least one primitive");
  for (size_t i = 0; i < set.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      HNAS_CHECK(set[i] != set[j], ConfigError, "search.primitives lists " << letter(set[i]) << " twice");
  const double lo = options_.min_attention_fraction, hi = options_.max_attention_fraction;
  HNAS_CHECK(lo >= 0 && lo <= 1, ConfigError, "search.min_attention_fraction must be in [0, 1], got " << lo);
  HNAS_CHECK(hi >= 0 && hi <= 1, ConfigError, "search.max_attention_fraction must be in [0, 1], got " << hi);
  HNAS_CHECK(lo <= hi, ConfigError,
             "search.min_attention_fraction (" << lo << ") exceeds search.max_attention_fraction (" << hi << ")");
  HNAS_ASSERT(prefix_.size() + suffix_.size() + static_cast<size_t>(n) <= Genome::kMaxLayers,
              "candidates of more than " << Genome::kMaxLayers << " layers");

  // Each block layer may take any primitive of the set, unless it is the candidate's fixed first or last layer.
  std::vector<int> all(set.size());
  for (size_t d = 0; d < set.size(); ++d) all[d] = static_cast<int>(d);
  allowed_.assign(static_cast<size_t>(n), all);
  auto pin = [&](const std::optional<Primitive>& fixed, const char* key, const Genome& context, bool at_start) {
    if (!fixed) return;
    if (!context.empty()) {
      const Primitive there = at_start ? context[0] : context[context.size() - 1];
      HNAS_CHECK(there == *fixed, ConfigError,
                 key << " = " << letter(*fixed) << ", but the fixed " << (at_start ? "prefix starts" : "suffix ends")
                     << " with " << letter(there));
      return;
    }
    const auto it = std::find(set.begin(), set.end(), *fixed);
    HNAS_CHECK(it != set.end(), ConfigError,
               key << " = " << letter(*fixed) << " is not one of search.primitives (" << letters(set) << ")");
    auto& layer = allowed_[at_start ? 0 : static_cast<size_t>(n - 1)];
    const int digit = static_cast<int>(it - set.begin());
    HNAS_CHECK(std::find(layer.begin(), layer.end(), digit) != layer.end(), ConfigError,
               "search.first = " << letter(*options_.first) << " and search.last = " << letter(*options_.last)
                                 << " contradict each other in a 1-layer candidate");
    layer.assign(1, digit);
  };
  pin(options_.first, "search.first", prefix_, /*at_start=*/true);
  pin(options_.last, "search.last", suffix_, /*at_start=*/false);

  context_attention_ = static_cast<int64_t>(prefix_.count(Primitive::Attention) + suffix_.count(Primitive::Attention));
  ways_.assign(static_cast<size_t>(n + 1), std::vector<double>(static_cast<size_t>(n + 1), 0.0));
  ways_[static_cast<size_t>(n)][0] = 1;
  for (int64_t i = n - 1; i >= 0; --i) {
    const auto& next = ways_[static_cast<size_t>(i + 1)];
    auto& here = ways_[static_cast<size_t>(i)];
    for (int d : allowed_[static_cast<size_t>(i)]) {
      const bool attention = set[static_cast<size_t>(d)] == Primitive::Attention;
      for (int64_t r = 0; r + attention <= n; ++r)
        here[static_cast<size_t>(r + attention)] += next[static_cast<size_t>(r)];
    }
  }
  if (feasible_size() > 0) return;
  int64_t fewest = n, most = 0;
  for (int64_t r = 0; r <= n; ++r) {
    if (ways_[0][static_cast<size_t>(r)] == 0) continue;
    fewest = std::min(fewest, r);
    most = std::max(most, r);
  }
  const size_t total = prefix_.size() + suffix_.size() + static_cast<size_t>(n);
  std::ostringstream out;
  out << "search.min_attention_fraction = " << lo << " and search.max_attention_fraction = " << hi
      << " leave no feasible candidate: of its " << total << " layers, " << context_attention_ + fewest << " to "
      << context_attention_ + most << " can be attention, and no such count gives a fraction within the bounds";
  throw ConfigError(out.str());
}

bool SearchSpace::attention_ok(int64_t attention_layers) const {
  const double total = static_cast<double>(prefix_.size() + suffix_.size()) + static_cast<double>(num_layers());
  const double fraction = static_cast<double>(attention_layers) / total;
  return fraction >= options_.min_attention_fraction && fraction <= options_.max_attention_fraction;
}

double SearchSpace::unconstrained_size() const {
  return std::pow(static_cast<double>(options_.primitives.size()), static_cast<double>(num_layers()));
}

std::optional<uint64_t> SearchSpace::feasible_count(uint64_t limit) const {
  const auto blocks = power(options_.primitives.size(), num_layers());
  if (!blocks || *blocks > limit) return std::nullopt;
  // Exact integer version of ways_[0]; no overflow, every partial count is at most Z^n.
  const size_t n = static_cast<size_t>(num_layers());
  std::vector<uint64_t> ways(n + 1, 0), next(n + 1, 0);
  ways[0] = 1;
  for (size_t i = 0; i < n; ++i) {
    std::fill(next.begin(), next.end(), 0);
    for (int d : allowed_[i]) {
      const bool attention = options_.primitives[static_cast<size_t>(d)] == Primitive::Attention;
      for (size_t r = 0; r + attention <= n; ++r) next[r + attention] += ways[r];
    }
    ways.swap(next);
  }
  uint64_t count = 0;
  for (size_t r = 0; r <= n; ++r)
    if (attention_ok(context_attention_ + static_cast<int64_t>(r))) count += ways[r];
  return count;
}

double SearchSpace::feasible_size() const {
  double size = 0;
  for (int64_t r = 0; r <= num_layers(); ++r)
    if (attention_ok(context_attention_ + r)) size += ways_[0][static_cast<size_t>(r)];
  return size;
}

Genome SearchSpace::candidate_at(uint64_t block_index) const {
  const auto blocks = power(options_.primitives.size(), num_layers());
  HNAS_ASSERT(blocks && block_index < *blocks, "block index " << block_index << " outside the space");
  std::vector<Primitive> layers = prefix_.layers();
  const size_t start = layers.size();
  layers.resize(start + static_cast<size_t>(num_layers()));
  const uint64_t z = options_.primitives.size();
  for (size_t i = static_cast<size_t>(num_layers()); i-- > 0;) {
    layers[start + i] = options_.primitives[static_cast<size_t>(block_index % z)];
    block_index /= z;
  }
  layers.insert(layers.end(), suffix_.layers().begin(), suffix_.layers().end());
  return Genome(std::move(layers));
}

uint64_t SearchSpace::block_index(const Genome& candidate) const {
  std::string why;
  HNAS_CHECK(structure_ok(candidate, &why), InternalError,
             "block_index of " << candidate.to_string() << ", which is outside the space: " << why);
  const auto& set = options_.primitives;
  uint64_t index = 0;
  for (int64_t i = 0; i < num_layers(); ++i) {
    const Primitive p = candidate[prefix_.size() + static_cast<size_t>(i)];
    index = index * set.size() + static_cast<uint64_t>(std::find(set.begin(), set.end(), p) - set.begin());
  }
  return index;
}

std::vector<Genome> SearchSpace::enumerate() const {
  const auto count = feasible_count(~uint64_t{0});
  HNAS_ASSERT(count && *count <= (uint64_t{1} << 24), "enumerate() of a space too large to list");
  const size_t n = static_cast<size_t>(num_layers());
  // open[i][a]: after i block layers holding a attention layers, some feasible completion exists.
  std::vector<std::vector<bool>> open(n + 1, std::vector<bool>(n + 1, false));
  for (size_t i = 0; i <= n; ++i)
    for (size_t a = 0; a <= i; ++a)
      for (size_t r = 0; r + a <= n && !open[i][a]; ++r)
        open[i][a] = ways_[i][r] > 0 && attention_ok(context_attention_ + static_cast<int64_t>(a + r));

  std::vector<Genome> out;
  out.reserve(*count);
  std::vector<Primitive> layers = prefix_.layers();
  const size_t start = layers.size();
  layers.resize(start + n);
  layers.insert(layers.end(), suffix_.layers().begin(), suffix_.layers().end());
  // Depth-first in digit order is block-index order; pruning keeps the cost proportional to the output.
  auto visit = [&](auto&& self, size_t i, size_t attention) -> void {
    if (i == n) {
      out.emplace_back(layers);
      return;
    }
    for (int d : allowed_[i]) {
      const Primitive p = options_.primitives[static_cast<size_t>(d)];
      const size_t a = attention + (p == Primitive::Attention);
      if (!open[i + 1][a]) continue;
      layers[start + i] = p;
      self(self, i + 1, a);
    }
  };
  if (open[0][0]) visit(visit, 0, 0);
  HNAS_ASSERT(out.size() == *count, "enumerated " << out.size() << " candidates, expected " << *count);
  return out;
}

bool SearchSpace::structure_ok(const Genome& candidate, std::string* why) const {
  auto fail = [&](const std::string& reason) {
    if (why != nullptr) *why = reason;
    return false;
  };
  const size_t n = static_cast<size_t>(num_layers());
  const size_t total = prefix_.size() + n + suffix_.size();
  if (candidate.size() != total)
    return fail("it has " + std::to_string(candidate.size()) + " layers; the space's candidates have " +
                std::to_string(total));
  for (size_t i = 0; i < prefix_.size(); ++i)
    if (candidate[i] != prefix_[i])
      return fail(layer_name(i) + " is " + letter(candidate[i]) + "; the fixed prefix has " + letter(prefix_[i]));
  for (size_t i = 0; i < suffix_.size(); ++i) {
    const size_t at = prefix_.size() + n + i;
    if (candidate[at] != suffix_[i])
      return fail(layer_name(at) + " is " + letter(candidate[at]) + "; the fixed suffix has " + letter(suffix_[i]));
  }
  const auto& set = options_.primitives;
  for (size_t i = prefix_.size(); i < prefix_.size() + n; ++i)
    if (std::find(set.begin(), set.end(), candidate[i]) == set.end())
      return fail(layer_name(i) + " is " + letter(candidate[i]) + ", not one of search.primitives (" + letters(set) +
                  ")");
  return true;
}

bool SearchSpace::contains(const Genome& candidate, std::string* why) const {
  if (!structure_ok(candidate, why)) return false;
  auto fail = [&](const std::string& reason) {
    if (why != nullptr) *why = reason;
    return false;
  };
  const size_t last = candidate.size() - 1;
  if (options_.first && candidate[0] != *options_.first)
    return fail(layer_name(0) + " is " + letter(candidate[0]) + "; first = " + letter(*options_.first));
  if (options_.last && candidate[last] != *options_.last)
    return fail(layer_name(last) + " is " + letter(candidate[last]) + "; last = " + letter(*options_.last));
  const auto attention = static_cast<int64_t>(candidate.count(Primitive::Attention));
  if (!attention_ok(attention)) {
    std::ostringstream out;
    out << attention << " of " << candidate.size() << " layers are attention ("
        << static_cast<double>(attention) / static_cast<double>(candidate.size())
        << "); the attention fraction must be in [" << options_.min_attention_fraction << ", "
        << options_.max_attention_fraction << "]";
    return fail(out.str());
  }
  return true;
}

Genome SearchSpace::random(Rng& rng) const {
  // Picks index i with probability weights[i] / sum; the last positive weight absorbs rounding.
  auto pick = [&rng](const std::vector<double>& weights) {
    double total = 0;
    for (double w : weights) total += w;
    double u = rng.uniform() * total;
    size_t chosen = weights.size();
    for (size_t i = 0; i < weights.size(); ++i) {
      if (weights[i] <= 0) continue;
      chosen = i;
      if (u < weights[i]) break;
      u -= weights[i];
    }
    HNAS_ASSERT(chosen < weights.size(), "sampling from zero weights");
    return chosen;
  };
  const size_t n = static_cast<size_t>(num_layers());
  std::vector<double> weights(n + 1, 0.0);
  for (size_t r = 0; r <= n; ++r)
    if (attention_ok(context_attention_ + static_cast<int64_t>(r))) weights[r] = ways_[0][r];
  size_t remaining = pick(weights);  // attention layers still to place in the block

  std::vector<Primitive> layers = prefix_.layers();
  for (size_t i = 0; i < n; ++i) {
    const auto& allowed = allowed_[i];
    weights.assign(allowed.size(), 0.0);
    for (size_t k = 0; k < allowed.size(); ++k) {
      const bool attention = options_.primitives[static_cast<size_t>(allowed[k])] == Primitive::Attention;
      if (!attention || remaining > 0) weights[k] = ways_[i + 1][remaining - attention];
    }
    const Primitive p = options_.primitives[static_cast<size_t>(allowed[pick(weights)])];
    remaining -= (p == Primitive::Attention);
    layers.push_back(p);
  }
  layers.insert(layers.end(), suffix_.layers().begin(), suffix_.layers().end());
  Genome candidate(std::move(layers));
  std::string why;
  HNAS_ASSERT(contains(candidate, &why), "random() drew an infeasible candidate: " << why);
  return candidate;
}

std::vector<double> SearchSpace::encode(const Genome& candidate) const {
  std::string why;
  HNAS_CHECK(structure_ok(candidate, &why), InternalError,
             "encode of " << candidate.to_string() << ", which is outside the space: " << why);
  const auto& set = options_.primitives;
  std::vector<double> x;
  x.reserve(encoding_size());
  for (size_t i = 0; i < static_cast<size_t>(num_layers()); ++i) {
    const auto digit =
        static_cast<size_t>(std::find(set.begin(), set.end(), candidate[prefix_.size() + i]) - set.begin());
    if (set.size() == 2) {
      x.push_back(static_cast<double>(digit));
    } else {
      for (size_t d = 0; d < set.size(); ++d) x.push_back(d == digit ? 1.0 : 0.0);
    }
  }
  return x;
}

size_t SearchSpace::encoding_size() const {
  const size_t z = options_.primitives.size();
  return static_cast<size_t>(num_layers()) * (z == 2 ? 1 : z);
}

}  // namespace hnas::search
