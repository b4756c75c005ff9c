// SPDX-License-Identifier: Apache-2.0
#include "hnas/core/rng.hpp"

#include "hnas/core/check.hpp"

namespace hnas {
namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Rng::Rng(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : state_) s = splitmix64(x);
}

Rng Rng::fork(uint64_t stream) const {
  uint64_t x = state_[0] ^ rotl(state_[2], 17) ^ (stream * 0xD1B54A32D192ED03ULL);
  return Rng(splitmix64(x));
}

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(state_[1] * 5, 7) * 9;
  const uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = rotl(state_[3], 45);
  return result;
}

uint64_t Rng::uniform_int(uint64_t n) {
  HNAS_ASSERT(n > 0, "uniform_int over an empty range");
  // Lemire's multiply-and-reject: unbiased and portable.
  uint64_t x = next_u64();
  __uint128_t m = static_cast<__uint128_t>(x) * n;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < n) {
    const uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      x = next_u64();
      m = static_cast<__uint128_t>(x) * n;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

int64_t Rng::uniform_int(int64_t lo, int64_t hi) {
  HNAS_ASSERT(hi > lo, "uniform_int(" << lo << ", " << hi << ") over an empty range");
  return lo + static_cast<int64_t>(uniform_int(static_cast<uint64_t>(hi - lo)));
}

double Rng::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

bool Rng::bernoulli(double p) { return uniform() < p; }

uint64_t derive_seed(uint64_t seed, std::string_view label) {
  uint64_t h = 0xCBF29CE484222325ULL;  // FNV-1a over the label, then mixed with the seed
  for (char c : label) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001B3ULL;
  }
  uint64_t x = seed ^ h;
  return splitmix64(x);
}

}  // namespace hnas
