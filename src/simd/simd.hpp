// SPDX-License-Identifier: Apache-2.0
// Fixed-width float vectors (GCC/Clang vector extensions) with a vectorisable exp and log for
// the fused CPU kernels: glibc's expf only vectorises under -ffast-math, which they avoid.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <new>

// Vectors are returned by value from inline helpers; GCC's -Wpsabi remark about that ABI
// without AVX-512 (HNAS_NATIVE=OFF) does not concern code that is inlined. Left on for the
// rest of the file that includes this module-private header, whose helpers return vectors.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace hnas::simd {

/// Lanes per vector: one AVX-512 register, two AVX2 registers; the attention kernels put
/// 16 query rows (forward) or 16 keys (backward) side by side in one vector.
inline constexpr int kLanes = 16;
using Vec = float __attribute__((vector_size(kLanes * sizeof(float))));
using IVec = std::int32_t __attribute__((vector_size(kLanes * sizeof(std::int32_t))));
/// Half-width vector for head-dimension chunks of 8.
using Vec8 = float __attribute__((vector_size(8 * sizeof(float))));

inline Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, const Vec& v) { std::memcpy(p, &v, sizeof v); }
inline Vec8 load8(const float* p) {
  Vec8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store8(float* p, const Vec8& v) { std::memcpy(p, &v, sizeof v); }
/// The first n (< kLanes) floats of p, the rest zero; for loop tails.
inline Vec load_partial(const float* p, int64_t n) {
  Vec v = {};
  std::memcpy(&v, p, static_cast<size_t>(n) * sizeof(float));
  return v;
}
inline void store_partial(float* p, const Vec& v, int64_t n) {
  std::memcpy(p, &v, static_cast<size_t>(n) * sizeof(float));
}
inline Vec splat(float x) { return Vec{} + x; }
inline Vec vmax(const Vec& a, const Vec& b) { return a > b ? a : b; }
inline float hsum(const Vec& v) {
  float s = 0.0f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}
/// {0, 1, ..., kLanes - 1}, for causal masks.
inline IVec lane_index() {
  IVec v;
  for (int i = 0; i < kLanes; ++i) v[i] = i;
  return v;
}

/// exp(x) to within ~2 ulp for x in [-87.3, 88.3]; 0 below (the flush keeps exp(-inf) = 0
/// for masked scores and avoids denormals), +inf above, NaN stays NaN. Cody-Waite
/// reduction x = n ln2 + r with a split ln2 whose high part makes n*hi exact even without
/// FMA, then a degree-7 polynomial for exp(r) on |r| <= ln2/2 and 2^n built in the exponent.
inline Vec exp(const Vec& x) {
  const Vec lo = splat(-87.3f), hi = splat(88.3f);
  Vec xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
  const Vec shifter = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const Vec n = (xc * 1.44269504088896341f + shifter) - shifter;
  Vec r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  Vec p = splat(1.0f / 5040.0f);
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const IVec bits = (__builtin_convertvector(n, IVec) + 127) << 23;
  Vec y = p * __builtin_bit_cast(Vec, bits);
  y = x < lo ? splat(0.0f) : y;
  y = x > hi ? splat(std::numeric_limits<float>::infinity()) : y;
  return y;
}

/// Natural log for positive normal x to within ~2 ulp; NaN stays NaN. x = 2^e m with m in
/// [sqrt(1/2), sqrt(2)), and log m = 2 atanh(t), t = (m - 1) / (m + 1), |t| <= 0.172, as an
/// odd series in t.
inline Vec log(const Vec& x) {
  const IVec bits = __builtin_bit_cast(IVec, x);
  IVec e = ((bits >> 23) & 0xff) - 127;
  Vec m = __builtin_bit_cast(Vec, (bits & 0x7fffff) | 0x3f800000);  // [1, 2)
  const IVec big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  e = big ? e + 1 : e;
  const Vec t = (m - 1.0f) / (m + 1.0f);
  const Vec t2 = t * t;
  Vec p = splat(1.0f / 11.0f);
  p = p * t2 + 1.0f / 9.0f;
  p = p * t2 + 1.0f / 7.0f;
  p = p * t2 + 1.0f / 5.0f;
  p = p * t2 + 1.0f / 3.0f;
  p = p * t2 + 1.0f;
  const Vec ef = __builtin_convertvector(e, Vec);
  const Vec y = ef * 0.693359375f + (2.0f * t * p + ef * -2.12194440e-4f);
  return x != x ? x : y;
}

/// Requests the cache lines of p[0, n) ahead of use. Rows of qkv lie a page apart at the
/// larger widths, where the hardware prefetchers stop following them.
inline void prefetch(const float* p, int64_t n) {
  for (int64_t i = 0; i < n; i += 64 / static_cast<int64_t>(sizeof(float))) __builtin_prefetch(p + i);
}

inline int64_t round_up(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

/// 64-byte aligned float scratch owned by one thread of a parallel region.
class Scratch {
 public:
  explicit Scratch(int64_t count)
      : data_(static_cast<float*>(::operator new[](static_cast<size_t>(count) * sizeof(float), std::align_val_t{64}))) {
  }
  ~Scratch() { ::operator delete[](data_, std::align_val_t{64}); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  float* get() const { return data_; }

 private:
  float* data_;
};

}  // namespace hnas::simd
