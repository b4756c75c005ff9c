// SPDX-License-Identifier: Apache-2.0
#include "token_stream.hpp"

#include <algorithm>
#include <numeric>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/rng.hpp"

namespace hnas::pretrain {
namespace {

// A multiplier coprime to n, so that i -> (a i + c) mod n is a permutation of [0, n).
uint64_t coprime_multiplier(uint64_t n, uint64_t seed) {
  if (n <= 2) return 1;
  for (uint64_t a = (seed % (n - 1)) + 1;; a = a % (n - 1) + 1)
    if (std::gcd(a, n) == 1) return a;
}

}  // namespace

TokenStream::TokenStream(const data::TokenDataset& dataset, const data::DataSplit& split, int64_t seq_len,
                         uint64_t seed)
    : dataset_(dataset), split_(split), seq_len_(seq_len), seed_(seed) {
  int64_t total = 0;
  for (const auto& r : split_.train) {
    total += std::max<int64_t>(0, (r.end - r.begin - 1) / seq_len_);
    starts_.push_back(total);
  }
  HNAS_CHECK(total > 0, ConfigError,
             "the training tokens hold no window of pretrain.seq_len + 1 = " << seq_len_ + 1
                                                                             << " tokens; give more data or a shorter "
                                                                                "pretrain.seq_len");
}

data::Window TokenStream::window(int64_t g) const {
  const auto n = static_cast<uint64_t>(windows_per_epoch());
  const auto epoch = static_cast<uint64_t>(g) / n;
  const uint64_t mix = derive_seed(seed_, "pretrain epoch " + std::to_string(epoch));
  const uint64_t a = coprime_multiplier(n, mix);
  const uint64_t c = (mix >> 32) % n;
  // (a i + c) mod n without overflow: a, i < n <= 2^40 windows in practice; use 128 bits.
  const auto i = static_cast<unsigned __int128>(static_cast<uint64_t>(g) % n);
  const auto index = static_cast<int64_t>((static_cast<unsigned __int128>(a) * i + c) % n);
  const size_t range = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), index) - starts_.begin());
  const int64_t before = range == 0 ? 0 : starts_[range - 1];
  const auto& r = split_.train[range];
  return {r.shard, r.begin + (index - before) * seq_len_};
}

void TokenStream::read(int64_t first, int64_t count, std::vector<int64_t>& inputs,
                       std::vector<int64_t>& targets) const {
  inputs.resize(static_cast<size_t>(count * seq_len_));
  targets.resize(inputs.size());
  for (int64_t row = 0; row < count; ++row) {
    const auto w = window(first + row);
    const auto tokens = dataset_.read(w.shard, w.offset, seq_len_ + 1);
    std::copy(tokens.begin(), tokens.end() - 1, inputs.begin() + row * seq_len_);
    std::copy(tokens.begin() + 1, tokens.end(), targets.begin() + row * seq_len_);
  }
}

}  // namespace hnas::pretrain
