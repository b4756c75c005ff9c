// SPDX-License-Identifier: Apache-2.0
// The training tokens of a pre-training run in one fixed order (internal to pretrain/):
// the training split cut into non-overlapping windows of seq_len + 1 tokens, visited in a
// pseudo-random permutation that changes every epoch. Window g of the run is a pure
// function of (seed, g), so the number of windows consumed (the cursor) is all a
// checkpoint needs, whatever the number of ranks that read them. Rank-local.
#pragma once

#include <cstdint>
#include <vector>

#include "hnas/data/token_dataset.hpp"

namespace hnas::pretrain {

class TokenStream {
 public:
  /// Keeps references to `dataset` and `split`, which must outlive it. Throws ConfigError
  /// when the training split holds no window of seq_len + 1 tokens.
  TokenStream(const data::TokenDataset& dataset, const data::DataSplit& split, int64_t seq_len, uint64_t seed);

  /// Distinct windows in one pass over the training split.
  int64_t windows_per_epoch() const { return starts_.empty() ? 0 : starts_.back(); }

  /// Windows [first, first + count) of the run as rows of inputs and targets
  /// ([count, seq_len], row-major; targets are the inputs shifted by one token).
  void read(int64_t first, int64_t count, std::vector<int64_t>& inputs, std::vector<int64_t>& targets) const;

 private:
  data::Window window(int64_t g) const;

  const data::TokenDataset& dataset_;
  const data::DataSplit& split_;
  int64_t seq_len_;
  uint64_t seed_;
  std::vector<int64_t> starts_;  // inclusive prefix sums of windows per training range
};

}  // namespace hnas::pretrain
