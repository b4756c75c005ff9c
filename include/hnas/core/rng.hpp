// SPDX-License-Identifier: Apache-2.0
// A small, portable random generator. std::uniform_int_distribution differs between
// standard libraries; data generators and search strategies must give the same stream
// on every platform, so they draw from this instead.
// An Rng is rank-local state; give each thread its own (fork).
#pragma once

#include <cstdint>
#include <string_view>

namespace hnas {

/// SplitMix64-seeded xoshiro256** generator with unbiased bounded integers.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  /// A generator whose stream is independent of this one's, keyed by `stream`.
  Rng fork(uint64_t stream) const;

  uint64_t next_u64();
  /// Uniform integer in [0, n); n must be > 0.
  uint64_t uniform_int(uint64_t n);
  /// Uniform integer in [lo, hi).
  int64_t uniform_int(int64_t lo, int64_t hi);
  /// Uniform double in [0, 1).
  double uniform();
  /// True with probability p.
  bool bernoulli(double p);

 private:
  uint64_t state_[4];
};

/// Mixes a seed with a label into a new seed (for per-purpose streams).
uint64_t derive_seed(uint64_t seed, std::string_view label);

}  // namespace hnas
