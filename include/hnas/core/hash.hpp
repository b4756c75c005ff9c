// SPDX-License-Identifier: Apache-2.0
// FNV-1a, 64 bits: the fingerprint of inputs (shards, a stage's configuration) that a
// rerun compares. Not cryptographic, but any edit of the hashed bytes changes it.
// Pure functions: callable from any rank or thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hnas {

inline constexpr uint64_t kFnvOffsetBasis = 1469598103934665603ull;

/// Folds `count` bytes into `hash` (start from kFnvOffsetBasis).
inline uint64_t fnv1a(uint64_t hash, const void* bytes, size_t count) {
  const auto* p = static_cast<const unsigned char*>(bytes);
  for (size_t i = 0; i < count; ++i) hash = (hash ^ p[i]) * 1099511628211ull;
  return hash;
}

inline uint64_t fnv1a(std::string_view text) { return fnv1a(kFnvOffsetBasis, text.data(), text.size()); }

/// The 16 lower-case hex digits of fnv1a(text): stored as a stage's input fingerprint.
std::string hex_fingerprint(std::string_view text);

}  // namespace hnas
