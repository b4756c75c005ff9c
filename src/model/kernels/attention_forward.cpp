// SPDX-License-Identifier: Apache-2.0
// Forward pass of the fused attention: 16 query rows share a vector, scores against packed
// key panels, online softmax, P V; saves the per-row logsumexp for the backward.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/attention_impl.hpp"

namespace hnas::model::attention_impl {
namespace {

/// Keys per panel of the packed rotated keys in the forward.
constexpr int kKeyPanel = 8;

/// st[j] (lanes = rows) = sum_d k[j][d] * qt[d] for j < jend (a multiple of 8), masked
/// causally for the rows i0..i0+15; returns the running lane-wise max. The keys come in
/// [D][kKeyPanel] panels, so the broadcasts of one panel share a pointer.
Vec block_scores(const float* kp, const float* qt, int64_t dim, int64_t i0, int64_t jend, float* st) {
  constexpr int kKeys = kKeyPanel;
  Vec mx = simd::splat(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < jend; j += kKeys) {
    Vec acc[kKeys] = {};
    const float* k = kp + j * dim;
    for (int64_t d = 0; d < dim; ++d) {
      const Vec q = simd::load(qt + d * kLanes);
      for (int jj = 0; jj < kKeys; ++jj) acc[jj] += k[d * kKeys + jj] * q;
    }
    for (int jj = 0; jj < kKeys; ++jj) {
      const Vec s = mask_keys_after_rows(acc[jj], j + jj - i0, -std::numeric_limits<float>::infinity());
      simd::store(st + (j + jj) * kLanes, s);
      mx = simd::vmax(mx, s);
    }
  }
  return mx;
}

/// ot[d] (lanes = rows) = sum_j vb[j][d] * pt[j] over j < jend, in head-dim chunks of kChunk.
template <int kChunk>
void block_values(const float* pt, const float* vb, int64_t padded_dim, int64_t jend, float* ot) {
  for (int64_t c = 0; c < padded_dim; c += kChunk) {
    Vec acc[kChunk] = {};
    for (int64_t j = 0; j < jend; ++j) {
      const Vec p = simd::load(pt + j * kLanes);
      const float* v = vb + j * padded_dim + c;
      for (int dd = 0; dd < kChunk; ++dd) acc[dd] += v[dd] * p;
    }
    for (int dd = 0; dd < kChunk; ++dd) simd::store(ot + (c + dd) * kLanes, acc[dd]);
  }
}

void forward_item(const Dims& dm, const float* qkv, const float* cos, const float* sin, int64_t b, int64_t kvh,
                  float* out, float* lse, Arena& arena) {
  const int64_t T = dm.seq, D = dm.head_dim, half = dm.half(), Dp = dm.padded_dim(), Tp = dm.padded_seq();
  const int64_t W = dm.width(), H = dm.heads, KV = dm.kv_heads, G = dm.group();
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  float* kr = arena.take(Tp * D);  // rotated keys in [D][kKeyPanel] panels
  float* vb = arena.take(Tp * Dp);
  float* qb = arena.take(G * T * D);  // rotated queries times the softmax scale, [G][T][D]
  float* qt = arena.take(D * kLanes);
  float* st = arena.take(Tp * kLanes);
  float* ot = arena.take(Dp * kLanes);
  float* tmp = arena.take(D);

  // One pass over the item's rows of qkv: its G query heads are adjacent, then K, then V.
  const float* base = qkv + b * T * W;
  for (int64_t t = 0; t < T; ++t) {
    if (t + kPrefetchRows < T) {
      const float* ahead = base + (t + kPrefetchRows) * W;
      simd::prefetch(ahead + kvh * G * D, G * D);
      simd::prefetch(ahead + (H + kvh) * D, D);
      simd::prefetch(ahead + (H + KV + kvh) * D, D);
    }
    const float* row = base + t * W;
    for (int64_t g = 0; g < G; ++g)
      rope_forward(row + (kvh * G + g) * D, cos + t * half, sin + t * half, half, scale, qb + (g * T + t) * D);
    rope_forward(row + (H + kvh) * D, cos + t * half, sin + t * half, half, 1.0f, tmp);
    float* k = kr + t / kKeyPanel * kKeyPanel * D + t % kKeyPanel;
    for (int64_t d = 0; d < D; ++d) k[d * kKeyPanel] = tmp[d];
    const float* v = row + (H + KV + kvh) * D;
    std::copy(v, v + D, vb + t * Dp);
    std::fill(vb + t * Dp + D, vb + (t + 1) * Dp, 0.0f);
  }
  // Keys past T are read by the last 8-key step; zeros keep them finite (and masked).
  for (int64_t t = T; t < Tp; ++t) {
    float* k = kr + t / kKeyPanel * kKeyPanel * D + t % kKeyPanel;
    for (int64_t d = 0; d < D; ++d) k[d * kKeyPanel] = 0.0f;
  }
  std::fill(vb + T * Dp, vb + Tp * Dp, 0.0f);

  for (int64_t g = 0; g < G; ++g) {
    const int64_t h = kvh * G + g;
    for (int64_t i0 = 0; i0 < T; i0 += kLanes) {
      const int64_t rows = std::min<int64_t>(kLanes, T - i0);
      for (int64_t r = 0; r < rows; ++r) {
        const float* q = qb + (g * T + i0 + r) * D;
        for (int64_t d = 0; d < D; ++d) qt[d * kLanes + r] = q[d];
      }
      for (int64_t r = rows; r < kLanes; ++r) {
        for (int64_t d = 0; d < D; ++d) qt[d * kLanes + r] = 0.0f;
      }
      const int64_t jend = round_up(i0 + rows, 8);
      const Vec mx = block_scores(kr, qt, D, i0, jend, st);
      Vec sum = {};
      for (int64_t j = 0; j < jend; ++j) {
        const Vec p = simd::exp(simd::load(st + j * kLanes) - mx);
        simd::store(st + j * kLanes, p);
        sum += p;
      }
      if (Dp % 16 == 0) {
        block_values<16>(st, vb, Dp, jend, ot);
      } else {
        block_values<8>(st, vb, Dp, jend, ot);
      }
      const Vec inv_sum = 1.0f / sum;
      const Vec row_lse = mx + simd::log(sum);  // sum >= 1: the row max contributes exp(0)
      for (int64_t r = 0; r < rows; ++r) {
        float* o = out + ((b * T + i0 + r) * H + h) * D;
        for (int64_t d = 0; d < D; ++d) o[d] = ot[d * kLanes + r] * inv_sum[r];
      }
      simd::store_partial(lse + (b * H + h) * T + i0, row_lse, rows);
    }
  }
}

}  // namespace

void attention_forward(const Dims& dm, const float* qkv, const float* cos, const float* sin, float* out, float* lse) {
  const int64_t Tp = dm.padded_seq(), D = dm.head_dim, Dp = dm.padded_dim();
  const int64_t arena_size =
      Arena::size({Tp * D, Tp * Dp, dm.group() * dm.seq * D, D * kLanes, Tp * kLanes, Dp * kLanes, D});
  at::parallel_for(0, dm.batch * dm.kv_heads, 1, [&](int64_t begin, int64_t end) {
    Arena arena(arena_size);
    for (int64_t item = begin; item < end; ++item) {
      arena.reset();
      forward_item(dm, qkv, cos, sin, item / dm.kv_heads, item % dm.kv_heads, out, lse, arena);
    }
  });
}

}  // namespace hnas::model::attention_impl
