// SPDX-License-Identifier: Apache-2.0
// The discrete space a search explores: sequences of n primitives (Z^n points), with
// optional constraints (attention fraction bounds, a fixed first or last primitive). A
// space may sit inside a fixed context: a prefix and a suffix that every candidate shares
// (the incremental searches vary only the block between them); constraints are checked
// on the whole candidate, prefix + block + suffix.
// Immutable after construction: safe to share between strategies on rank 0.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hnas/arch/genome.hpp"
#include "hnas/arch/primitive.hpp"
#include "hnas/core/rng.hpp"

namespace hnas::search {

struct SearchSpaceOptions {
  int64_t num_layers = 6;  ///< n: layers the search chooses (the block, for incremental search)
  std::vector<arch::Primitive> primitives{arch::Primitive::Attention, arch::Primitive::Mlp};
  double min_attention_fraction = 0.0;  ///< of the whole candidate's layers
  double max_attention_fraction = 1.0;
  std::optional<arch::Primitive> first;  ///< the whole candidate's first layer, if fixed
  std::optional<arch::Primitive> last;   ///< the whole candidate's last layer, if fixed
};

class SearchSpace {
 public:
  /// Throws ConfigError naming the option for an empty or repeated primitive set,
  /// num_layers outside [1, 64], fraction bounds outside [0, 1] or crossed, and for a
  /// space with no feasible candidate at all.
  explicit SearchSpace(SearchSpaceOptions options, arch::Genome prefix = {}, arch::Genome suffix = {});

  const SearchSpaceOptions& options() const { return options_; }
  int64_t num_layers() const { return options_.num_layers; }
  const arch::Genome& prefix() const { return prefix_; }
  const arch::Genome& suffix() const { return suffix_; }

  /// Z^n, the unconstrained number of blocks, as a double (it can exceed 2^64).
  double unconstrained_size() const;
  /// The exact number of feasible candidates when unconstrained_size() <= limit, else nullopt.
  std::optional<uint64_t> feasible_count(uint64_t limit = uint64_t{1} << 24) const;
  /// The number of feasible candidates as a double, for any size (exact up to 2^53).
  double feasible_size() const;

  /// Block index (base-Z digits in primitive-set order, the block's layer 0 most
  /// significant) <-> whole candidate, feasible or not. Valid only when
  /// unconstrained_size() < 2^63; block_index() throws InternalError for a genome that
  /// is not prefix + block + suffix.
  arch::Genome candidate_at(uint64_t block_index) const;
  uint64_t block_index(const arch::Genome& candidate) const;

  /// Every feasible candidate in block-index order. Call only when feasible_count() is set
  /// (any limit) and at most 2^24.
  std::vector<arch::Genome> enumerate() const;

  /// True when `candidate` is prefix + some block + suffix that meets the constraints;
  /// otherwise false, with the reason in `why` (if given), e.g. "layer 1 is A; first = M".
  bool contains(const arch::Genome& candidate, std::string* why = nullptr) const;

  /// A uniformly random feasible candidate. Exact sampling, no rejection: the attention
  /// count is drawn weighted by its number of feasible blocks, then the layers.
  arch::Genome random(Rng& rng) const;

  /// The GP input of a candidate's block, in [0, 1]: one value per layer when Z = 2
  /// (0 for the first primitive of the set), else one-hot (Z values per layer).
  std::vector<double> encode(const arch::Genome& candidate) const;
  /// Length of encode()'s result.
  size_t encoding_size() const;

 private:
  bool structure_ok(const arch::Genome& candidate, std::string* why) const;
  bool attention_ok(int64_t attention_layers) const;

  SearchSpaceOptions options_;
  arch::Genome prefix_, suffix_;
  std::vector<std::vector<int>> allowed_;  ///< per block layer: allowed digits (indices into primitives)
  int64_t context_attention_ = 0;          ///< attention layers in prefix + suffix
  /// ways_[i][r]: blocks layers i..n-1 can take with exactly r attention layers (as doubles).
  std::vector<std::vector<double>> ways_;
};

}  // namespace hnas::search
