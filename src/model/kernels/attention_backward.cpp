// SPDX-License-Identifier: Apache-2.0
// Backward pass of the fused attention: probabilities recomputed from the saved
// logsumexp; keys-in-lanes blocks for narrow heads, register-tiled phases for wide ones.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/attention_impl.hpp"

namespace hnas::model::attention_impl {
namespace {

/// dq[r][c..c+w) += sum_jj ds[r][jj] * kr[jj][c..c+w) for kRows rows of the dS strip, in
/// head-dim chunks of the width w of VecT.
template <int kRows, typename VecT>
void accumulate_dq(const float* ds, const float* kr, int64_t padded_dim, float* dq) {
  constexpr int kWidth = sizeof(VecT) / sizeof(float);
  for (int64_t c = 0; c < padded_dim; c += kWidth) {
    VecT acc[kRows] = {};
    for (int jj = 0; jj < kLanes; ++jj) {
      VecT k;
      std::memcpy(&k, kr + jj * padded_dim + c, sizeof k);
      for (int r = 0; r < kRows; ++r) acc[r] += ds[r * kLanes + jj] * k;
    }
    for (int r = 0; r < kRows; ++r) {
      VecT q;
      std::memcpy(&q, dq + r * padded_dim + c, sizeof q);
      q += acc[r];
      std::memcpy(dq + r * padded_dim + c, &q, sizeof q);
    }
  }
}

template <int kRows>
void accumulate_dq(const float* ds, const float* kr, int64_t padded_dim, float* dq) {
  if (padded_dim % kLanes == 0) {
    accumulate_dq<kRows, Vec>(ds, kr, padded_dim, dq);
  } else {
    accumulate_dq<kRows, Vec8>(ds, kr, padded_dim, dq);
  }
}

/// Rows i..i+kRows-1 (consecutive rows of one head) against the keys j0..j0+15 in lanes:
/// recomputes p, forms ds = p * (dP - Di), adds their dK/dV contributions and stores ds for
/// dQ. Several rows per call share each load and store of the dK/dV accumulators.
template <int kRows>
void backward_rows(const float* qs, const float* go, const float* di, const float* ls, int64_t dim, int64_t i,
                   int64_t j0, const float* kt, const float* vt, float* dkt, float* dvt, float* dsb) {
  Vec s[kRows] = {}, dp[kRows] = {};
  for (int64_t d = 0; d < dim; ++d) {
    const Vec k = simd::load(kt + d * kLanes), v = simd::load(vt + d * kLanes);
    for (int r = 0; r < kRows; ++r) {
      s[r] += qs[r * dim + d] * k;
      dp[r] += go[r * dim + d] * v;
    }
  }
  Vec p[kRows], ds[kRows];
  for (int r = 0; r < kRows; ++r) {
    p[r] = simd::exp(s[r] - ls[r]);
    // Keys j0 + lane > i + r are in the future of the row.
    if (i + r - j0 < kLanes - 1) {
      const IVec limit = IVec{} + static_cast<int32_t>(i + r - j0);
      p[r] = simd::lane_index() <= limit ? p[r] : simd::splat(0.0f);
    }
    ds[r] = p[r] * (dp[r] - di[r]);
    simd::store(dsb + r * kLanes, ds[r]);
  }
  for (int64_t d = 0; d < dim; ++d) {
    Vec dv = simd::load(dvt + d * kLanes), dk = simd::load(dkt + d * kLanes);
    for (int r = 0; r < kRows; ++r) {
      dv += go[r * dim + d] * p[r];
      dk += qs[r * dim + d] * ds[r];
    }
    simd::store(dvt + d * kLanes, dv);
    simd::store(dkt + d * kLanes, dk);
  }
}

/// Gathers one (batch, kv head) item's backward inputs: rotated keys kr [Tp][key_stride]
/// and values vb [Tp][D], both zero-padded; for the G*T query rows (head-major) the scaled
/// rotated queries qs and output gradients go [G*T][D], Di = dO . O, and the logsumexp.
void gather_item(const Dims& dm, const float* qkv, const float* cos, const float* sin, const float* out,
                 const float* lse, const float* dout, int64_t b, int64_t kvh, float scale, int64_t key_stride,
                 float* kr, float* vb, float* qs, float* go, float* di, float* ls) {
  const int64_t T = dm.seq, D = dm.head_dim, half = dm.half(), Tp = dm.padded_seq();
  const int64_t W = dm.width(), H = dm.heads, KV = dm.kv_heads, G = dm.group();
  const float* base = qkv + b * T * W;
  std::fill(kr, kr + Tp * key_stride, 0.0f);
  std::fill(vb + T * D, vb + Tp * D, 0.0f);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t out_row = (b * T + t) * H + kvh * G;  // first head of the group in out/dout
    if (t + kPrefetchRows < T) {
      const float* ahead = base + (t + kPrefetchRows) * W;
      simd::prefetch(ahead + kvh * G * D, G * D);
      simd::prefetch(ahead + (H + kvh) * D, D);
      simd::prefetch(ahead + (H + KV + kvh) * D, D);
      simd::prefetch(out + (out_row + kPrefetchRows * H) * D, G * D);
      simd::prefetch(dout + (out_row + kPrefetchRows * H) * D, G * D);
    }
    const float* row = base + t * W;
    rope_forward(row + (H + kvh) * D, cos + t * half, sin + t * half, half, 1.0f, kr + t * key_stride);
    std::copy(row + (H + KV + kvh) * D, row + (H + KV + kvh + 1) * D, vb + t * D);
    for (int64_t g = 0; g < G; ++g) {
      const int64_t r = g * T + t;
      rope_forward(row + (kvh * G + g) * D, cos + t * half, sin + t * half, half, scale, qs + r * D);
      const float* dor = dout + (out_row + g) * D;
      const float* o = out + (out_row + g) * D;
      std::copy(dor, dor + D, go + r * D);
      if (D % kLanes == 0) {
        // Lane-wise partial sums: a scalar running sum would be one long dependency chain.
        Vec acc = {};
        for (int64_t d = 0; d < D; d += kLanes) acc += simd::load(dor + d) * simd::load(o + d);
        di[r] = simd::hsum(acc);
      } else {
        float acc = 0.0f;
        for (int64_t d = 0; d < D; ++d) acc += dor[d] * o[d];
        di[r] = acc;
      }
      ls[r] = lse[(b * H + kvh * G + g) * T + t];
    }
  }
}

void backward_item(const Dims& dm, const float* qkv, const float* cos, const float* sin, const float* out,
                   const float* lse, const float* dout, int64_t b, int64_t kvh, float* dqkv, Arena& arena) {
  const int64_t T = dm.seq, D = dm.head_dim, half = dm.half(), Dp = dm.padded_dim(), Tp = dm.padded_seq();
  const int64_t W = dm.width(), H = dm.heads, KV = dm.kv_heads, G = dm.group();
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  float* kr = arena.take(Tp * Dp);     // rotated keys, rows and columns zero-padded
  float* vb = arena.take(Tp * D);      // values, rows zero-padded
  float* qs = arena.take(G * T * D);   // rotated queries times the softmax scale
  float* go = arena.take(G * T * D);   // output gradient rows
  float* di = arena.take(G * T);       // sum_d dO * O per row
  float* ls = arena.take(G * T);       // logsumexp per row
  float* dq = arena.take(G * T * Dp);  // gradient w.r.t. qs
  float* dsb = arena.take(G * T * kLanes);
  float* kt = arena.take(D * kLanes);
  float* vt = arena.take(D * kLanes);
  float* dkt = arena.take(D * kLanes);
  float* dvt = arena.take(D * kLanes);
  float* tmp = arena.take(D);

  gather_item(dm, qkv, cos, sin, out, lse, dout, b, kvh, scale, /*key_stride=*/Dp, kr, vb, qs, go, di, ls);
  std::fill(dq, dq + G * T * Dp, 0.0f);

  for (int64_t j0 = 0; j0 < T; j0 += kLanes) {
    const int64_t cols = std::min<int64_t>(kLanes, T - j0);
    for (int64_t jj = 0; jj < kLanes; ++jj) {
      for (int64_t d = 0; d < D; ++d) {
        kt[d * kLanes + jj] = kr[(j0 + jj) * Dp + d];
        vt[d * kLanes + jj] = vb[(j0 + jj) * D + d];
      }
    }
    std::fill(dkt, dkt + D * kLanes, 0.0f);
    std::fill(dvt, dvt + D * kLanes, 0.0f);
    for (int64_t g = 0; g < G; ++g) {
      int64_t i = j0;
      for (; i + 4 <= T; i += 4) {
        const int64_t row = g * T + i;
        backward_rows<4>(qs + row * D, go + row * D, di + row, ls + row, D, i, j0, kt, vt, dkt, dvt,
                         dsb + row * kLanes);
      }
      for (; i < T; ++i) {
        const int64_t row = g * T + i;
        backward_rows<1>(qs + row * D, go + row * D, di + row, ls + row, D, i, j0, kt, vt, dkt, dvt,
                         dsb + row * kLanes);
      }
      for (i = j0; i + 4 <= T; i += 4)
        accumulate_dq<4>(dsb + (g * T + i) * kLanes, kr + j0 * Dp, Dp, dq + (g * T + i) * Dp);
      for (; i < T; ++i) accumulate_dq<1>(dsb + (g * T + i) * kLanes, kr + j0 * Dp, Dp, dq + (g * T + i) * Dp);
    }
    for (int64_t jj = 0; jj < cols; ++jj) {
      const int64_t j = j0 + jj;
      float* row = dqkv + (b * T + j) * W;
      for (int64_t d = 0; d < D; ++d) {
        tmp[d] = dkt[d * kLanes + jj];
        row[(H + KV + kvh) * D + d] = dvt[d * kLanes + jj];
      }
      rope_backward(tmp, cos + j * half, sin + j * half, half, 1.0f, row + (H + kvh) * D);
    }
  }
  for (int64_t g = 0; g < G; ++g) {
    const int64_t h = kvh * G + g;
    for (int64_t t = 0; t < T; ++t)
      rope_backward(dq + (g * T + t) * Dp, cos + t * half, sin + t * half, half, scale, dqkv + (b * T + t) * W + h * D);
  }
}

// ---- Backward for head dims that are multiples of 16 (>= 32): GEMM-like register tiles.
//
// The path above keeps the dK/dV block in memory as [D][16 keys] and broadcasts one scalar
// per FMA, so at D = 64 it spends more loads and stores than FMAs. Here each key block runs
// over its rows in chunks that stay in L1, in three phases per chunk:
//  A. P and dS for kRowsA rows x 16 keys (keys in lanes), stored as [row][key] strips;
//  B. dV += P^T dO and dK += dS^T Q with D in lanes: a tile of keys x head-dim vectors stays
//     in registers over all rows of the chunk, each row's vectors loaded once per tile;
//  C. dQ += dS K with D in lanes, a tile of rows x head-dim vectors in registers over the
//     16 keys.

/// Rows per chunk of a key block: its queries, output gradients, dQ rows and strips stay in L1.
constexpr int64_t kChunkRows = 32;

/// Rows per panel of the packed queries and output gradients in phase A.
constexpr int64_t kPanelRows = 8;

/// Rows i..i+kRows-1 against the keys j0..j0+15 in lanes: recomputes p and forms
/// ds = p * (dP - Di), stored as [row][key] strips for phases B and C. The query and output
/// gradient of row r at column d are qs[d * stride + r] and go[d * stride + r]: packed
/// [D][kPanelRows] panels keep the broadcasts of all rows on one pointer.
template <int kRows>
void block_probs(const float* qs, const float* go, int64_t stride, const float* di, const float* ls, int64_t dim,
                 int64_t i, int64_t j0, const float* kt, const float* vt, float* pb, float* dsb) {
  Vec s[kRows] = {}, dp[kRows] = {};
  for (int64_t d = 0; d < dim; ++d) {
    const Vec k = simd::load(kt + d * kLanes), v = simd::load(vt + d * kLanes);
    for (int r = 0; r < kRows; ++r) {
      s[r] += qs[d * stride + r] * k;
      dp[r] += go[d * stride + r] * v;
    }
  }
  for (int r = 0; r < kRows; ++r) {
    Vec p = simd::exp(s[r] - ls[r]);
    if (i + r - j0 < kLanes - 1) {
      const IVec limit = IVec{} + static_cast<int32_t>(i + r - j0);
      p = simd::lane_index() <= limit ? p : simd::splat(0.0f);
    }
    simd::store(pb + r * kLanes, p);
    simd::store(dsb + r * kLanes, p * (dp[r] - di[r]));
  }
}

/// acc[jj][c..c+16 kVecs) += sum_i w[i][jj] * x[i][c..) for the 16 keys jj of the block over
/// `rows` rows; kLanes / kVecs keys at a time, so that the tile is 16 registers.
template <int kVecs>
void key_sums(const float* w, const float* x, int64_t dim, int64_t rows, int64_t c, float* acc, int64_t acc_stride) {
  constexpr int kKeys = kLanes / kVecs;
  for (int jt = 0; jt < kLanes; jt += kKeys) {
    Vec a[kKeys][kVecs];
    for (int k = 0; k < kKeys; ++k)
      for (int v = 0; v < kVecs; ++v) a[k][v] = simd::load(acc + (jt + k) * acc_stride + c + v * kLanes);
    for (int64_t i = 0; i < rows; ++i) {
      Vec xv[kVecs];
      for (int v = 0; v < kVecs; ++v) xv[v] = simd::load(x + i * dim + c + v * kLanes);
      for (int k = 0; k < kKeys; ++k) {
        const float wk = w[i * kLanes + jt + k];
        for (int v = 0; v < kVecs; ++v) a[k][v] += wk * xv[v];
      }
    }
    for (int k = 0; k < kKeys; ++k)
      for (int v = 0; v < kVecs; ++v) simd::store(acc + (jt + k) * acc_stride + c + v * kLanes, a[k][v]);
  }
}

/// Phase B over all head-dim chunks: 64 columns at a time, then 32, then 16.
void key_sums(const float* w, const float* x, int64_t dim, int64_t rows, float* acc, int64_t acc_stride) {
  int64_t c = 0;
  for (; c + 4 * kLanes <= dim; c += 4 * kLanes) key_sums<4>(w, x, dim, rows, c, acc, acc_stride);
  if (c + 2 * kLanes <= dim) {
    key_sums<2>(w, x, dim, rows, c, acc, acc_stride);
    c += 2 * kLanes;
  }
  if (c < dim) key_sums<1>(w, x, dim, rows, c, acc, acc_stride);
}

/// dq[r][c..c+16 kVecs) += sum_jj ds[r][jj] * kr[jj][c..) for kRows rows.
template <int kRows, int kVecs>
void row_sums(const float* ds, const float* kr, int64_t dim, int64_t c, float* dq) {
  Vec a[kRows][kVecs] = {};
  for (int jj = 0; jj < kLanes; ++jj) {
    Vec k[kVecs];
    for (int v = 0; v < kVecs; ++v) k[v] = simd::load(kr + jj * dim + c + v * kLanes);
    for (int r = 0; r < kRows; ++r) {
      const float s = ds[r * kLanes + jj];
      for (int v = 0; v < kVecs; ++v) a[r][v] += s * k[v];
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int v = 0; v < kVecs; ++v) {
      float* q = dq + r * dim + c + v * kLanes;
      simd::store(q, simd::load(q) + a[r][v]);
    }
}

template <int kVecs>
void row_sums(const float* ds, const float* kr, int64_t dim, int64_t rows, int64_t c, float* dq) {
  constexpr int kRows = kLanes / kVecs;
  int64_t r = 0;
  for (; r + kRows <= rows; r += kRows) row_sums<kRows, kVecs>(ds + r * kLanes, kr, dim, c, dq + r * dim);
  for (; r < rows; ++r) row_sums<1, kVecs>(ds + r * kLanes, kr, dim, c, dq + r * dim);
}

/// Phase C over all head-dim chunks, like key_sums.
void row_sums(const float* ds, const float* kr, int64_t dim, int64_t rows, float* dq) {
  int64_t c = 0;
  for (; c + 4 * kLanes <= dim; c += 4 * kLanes) row_sums<4>(ds, kr, dim, rows, c, dq);
  if (c + 2 * kLanes <= dim) {
    row_sums<2>(ds, kr, dim, rows, c, dq);
    c += 2 * kLanes;
  }
  if (c < dim) row_sums<1>(ds, kr, dim, rows, c, dq);
}

void backward_item_wide(const Dims& dm, const float* qkv, const float* cos, const float* sin, const float* out,
                        const float* lse, const float* dout, int64_t b, int64_t kvh, float* dqkv, Arena& arena) {
  const int64_t T = dm.seq, D = dm.head_dim, half = dm.half(), Tp = dm.padded_seq();
  const int64_t W = dm.width(), H = dm.heads, KV = dm.kv_heads, G = dm.group();
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  float* kr = arena.take(Tp * D);     // rotated keys, rows zero-padded
  float* vb = arena.take(Tp * D);     // values, rows zero-padded
  float* qs = arena.take(G * T * D);  // rotated queries times the softmax scale
  float* go = arena.take(G * T * D);  // output gradient rows
  float* di = arena.take(G * T);      // sum_d dO * O per row
  float* ls = arena.take(G * T);      // logsumexp per row
  float* dq = arena.take(G * T * D);  // gradient w.r.t. qs
  float* pb = arena.take(kChunkRows * kLanes);
  float* dsb = arena.take(kChunkRows * kLanes);
  float* kt = arena.take(D * kLanes);
  float* vt = arena.take(D * kLanes);
  float* dkb = arena.take(kLanes * D);  // dK of the key block, [key][D]
  float* dvb = arena.take(kLanes * D);
  float* qp = arena.take(G * T * D);  // qs and go in [D][kPanelRows] panels of whole panels
  float* gp = arena.take(G * T * D);

  gather_item(dm, qkv, cos, sin, out, lse, dout, b, kvh, scale, /*key_stride=*/D, kr, vb, qs, go, di, ls);
  std::fill(dq, dq + G * T * D, 0.0f);
  const int64_t panel_end = T / kPanelRows * kPanelRows;
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t t = 0; t < panel_end; ++t) {
      const int64_t r = g * T + t;
      float* q = qp + (g * T + t / kPanelRows * kPanelRows) * D + t % kPanelRows;
      float* o = gp + (q - qp);
      for (int64_t d = 0; d < D; ++d) {
        q[d * kPanelRows] = qs[r * D + d];
        o[d * kPanelRows] = go[r * D + d];
      }
    }
  }

  for (int64_t j0 = 0; j0 < T; j0 += kLanes) {
    const int64_t cols = std::min<int64_t>(kLanes, T - j0);
    for (int64_t jj = 0; jj < kLanes; ++jj) {
      for (int64_t d = 0; d < D; ++d) {
        kt[d * kLanes + jj] = kr[(j0 + jj) * D + d];
        vt[d * kLanes + jj] = vb[(j0 + jj) * D + d];
      }
    }
    std::fill(dkb, dkb + kLanes * D, 0.0f);
    std::fill(dvb, dvb + kLanes * D, 0.0f);
    for (int64_t g = 0; g < G; ++g) {
      for (int64_t i0 = j0; i0 < T; i0 += kChunkRows) {
        const int64_t rows = std::min<int64_t>(kChunkRows, T - i0);
        const int64_t first = g * T + i0;
        int64_t r = 0;
        // i0 is a multiple of kPanelRows, so whole panels start at r = 0.
        for (; r + kPanelRows <= rows; r += kPanelRows) {
          block_probs<kPanelRows>(qp + (first + r) * D, gp + (first + r) * D, kPanelRows, di + first + r,
                                  ls + first + r, D, i0 + r, j0, kt, vt, pb + r * kLanes, dsb + r * kLanes);
        }
        for (; r < rows; ++r) {
          block_probs<1>(qs + (first + r) * D, go + (first + r) * D, 1, di + first + r, ls + first + r, D, i0 + r, j0,
                         kt, vt, pb + r * kLanes, dsb + r * kLanes);
        }
        key_sums(pb, go + first * D, D, rows, dvb, D);
        key_sums(dsb, qs + first * D, D, rows, dkb, D);
        row_sums(dsb, kr + j0 * D, D, rows, dq + first * D);
      }
    }
    for (int64_t jj = 0; jj < cols; ++jj) {
      const int64_t j = j0 + jj;
      float* row = dqkv + (b * T + j) * W;
      std::copy(dvb + jj * D, dvb + (jj + 1) * D, row + (H + KV + kvh) * D);
      rope_backward(dkb + jj * D, cos + j * half, sin + j * half, half, 1.0f, row + (H + kvh) * D);
    }
  }
  for (int64_t g = 0; g < G; ++g) {
    const int64_t h = kvh * G + g;
    for (int64_t t = 0; t < T; ++t)
      rope_backward(dq + (g * T + t) * D, cos + t * half, sin + t * half, half, scale, dqkv + (b * T + t) * W + h * D);
  }
}

}  // namespace

void attention_backward(const Dims& dm, const float* qkv, const float* cos, const float* sin, const float* out,
                        const float* lse, const float* dout, float* dqkv) {
  const int64_t T = dm.seq, Tp = dm.padded_seq(), D = dm.head_dim, Dp = dm.padded_dim(), G = dm.group();
  // Wide heads take the register-tiled path; narrow ones (D = 8 at the search scale) have
  // too few columns for its tiles and keep the keys-in-lanes blocks.
  const bool wide = D % kLanes == 0 && D >= 2 * kLanes;
  const int64_t arena_size =
      wide ? Arena::size({Tp * D, Tp * D, G * T * D, G * T * D, G * T, G * T, G * T * D, kChunkRows * kLanes,
                          kChunkRows * kLanes, D * kLanes, D * kLanes, kLanes * D, kLanes * D, G * T * D, G * T * D})
           : Arena::size({Tp * Dp, Tp * D, G * T * D, G * T * D, G * T, G * T, G * T * Dp, G * T * kLanes, D * kLanes,
                          D * kLanes, D * kLanes, D * kLanes, D});
  at::parallel_for(0, dm.batch * dm.kv_heads, 1, [&](int64_t begin, int64_t end) {
    Arena arena(arena_size);
    for (int64_t item = begin; item < end; ++item) {
      arena.reset();
      const int64_t b = item / dm.kv_heads, kvh = item % dm.kv_heads;
      if (wide) {
        backward_item_wide(dm, qkv, cos, sin, out, lse, dout, b, kvh, dqkv, arena);
      } else {
        backward_item(dm, qkv, cos, sin, out, lse, dout, b, kvh, dqkv, arena);
      }
    }
  });
}

}  // namespace hnas::model::attention_impl
