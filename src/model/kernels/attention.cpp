// SPDX-License-Identifier: Apache-2.0
// Fused causal GQA attention with rotary embedding for CPU float32, flash-attention style:
// no [B, H, T, T] scores, only a per-row logsumexp; the backward recomputes probabilities.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "hnas/core/check.hpp"
#include "hnas/model/ops.hpp"
#include "model/kernels/simd.hpp"

namespace hnas::model {
namespace {

using detail::IVec;
using detail::kLanes;
using detail::round_up;
using detail::Vec;
using detail::Vec8;

// Work is split per (batch, kv head) item; each item handles its G = H / KV query heads, so
// the item alone owns its slices of the output and of d_qkv (no atomics, no reductions).
//
// Forward: 16 query rows of one head share a vector (rows in lanes). The scores of the
// block against key j are then D broadcast-FMAs, and the softmax max/sum over j are plain
// lane-wise operations: no horizontal reductions anywhere.
// Backward: 16 keys share a vector (keys in lanes) and the loop runs over the query rows,
// so dK and dV accumulate lane-wise in a small block; dQ, which would need a reduction
// over the lanes, is applied per key block from the stored dS strip instead.

/// How many rows of qkv ahead the gathering loops prefetch.
constexpr int64_t kPrefetchRows = 8;

struct Dims {
  int64_t batch, seq, heads, kv_heads, head_dim;
  int64_t group() const { return heads / kv_heads; }
  int64_t width() const { return (heads + 2 * kv_heads) * head_dim; }
  int64_t half() const { return head_dim / 2; }
  int64_t padded_seq() const { return round_up(seq, kLanes); }
  int64_t padded_dim() const { return round_up(head_dim, 8); }  // for 8-wide chunks of a head
};

/// Hands out 64-byte aligned pieces of one per-thread allocation.
class Arena {
 public:
  explicit Arena(int64_t floats) : scratch_(floats) {}
  /// Starts handing out from the beginning again (for the next work item).
  void reset() { used_ = 0; }
  float* take(int64_t floats) {
    float* p = scratch_.get() + used_;
    used_ += round_up(floats, kLanes);
    return p;
  }
  static int64_t size(std::initializer_list<int64_t> pieces) {
    int64_t total = 0;
    for (int64_t n : pieces) total += round_up(n, kLanes);
    return total;
  }

 private:
  detail::Scratch scratch_;
  int64_t used_ = 0;
};

/// y = rotate(x) * scale at one position (NeoX layout: halves rotate as complex pairs).
inline void rope_forward(const float* x, const float* cos, const float* sin, int64_t half, float scale, float* y) {
  for (int64_t d = 0; d < half; ++d) {
    const float x1 = x[d], x2 = x[d + half];
    y[d] = (x1 * cos[d] - x2 * sin[d]) * scale;
    y[d + half] = (x2 * cos[d] + x1 * sin[d]) * scale;
  }
}

/// dx = rotate^T(dy) * scale: the gradient through rope_forward.
inline void rope_backward(const float* dy, const float* cos, const float* sin, int64_t half, float scale, float* dx) {
  for (int64_t d = 0; d < half; ++d) {
    const float dy1 = dy[d], dy2 = dy[d + half];
    dx[d] = (dy1 * cos[d] + dy2 * sin[d]) * scale;
    dx[d + half] = (dy2 * cos[d] - dy1 * sin[d]) * scale;
  }
}

/// Causal mask for key j against the rows i0 + lane: keeps lanes with i0 + lane >= j.
inline Vec mask_keys_after_rows(const Vec& v, int64_t j_minus_i0, float fill) {
  if (j_minus_i0 <= 0) return v;
  const IVec limit = IVec{} + static_cast<int32_t>(j_minus_i0);
  return detail::lane_index() >= limit ? v : detail::splat(fill);
}

/// Keys per panel of the packed rotated keys in the forward.
constexpr int kKeyPanel = 8;

/// st[j] (lanes = rows) = sum_d k[j][d] * qt[d] for j < jend (a multiple of 8), masked
/// causally for the rows i0..i0+15; returns the running lane-wise max. The keys come in
/// [D][kKeyPanel] panels, so the broadcasts of one panel share a pointer.
Vec block_scores(const float* kp, const float* qt, int64_t dim, int64_t i0, int64_t jend, float* st) {
  constexpr int kKeys = kKeyPanel;
  Vec mx = detail::splat(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < jend; j += kKeys) {
    Vec acc[kKeys] = {};
    const float* k = kp + j * dim;
    for (int64_t d = 0; d < dim; ++d) {
      const Vec q = detail::load(qt + d * kLanes);
      for (int jj = 0; jj < kKeys; ++jj) acc[jj] += k[d * kKeys + jj] * q;
    }
    for (int jj = 0; jj < kKeys; ++jj) {
      const Vec s = mask_keys_after_rows(acc[jj], j + jj - i0, -std::numeric_limits<float>::infinity());
      detail::store(st + (j + jj) * kLanes, s);
      mx = detail::vmax(mx, s);
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
      const Vec p = detail::load(pt + j * kLanes);
      const float* v = vb + j * padded_dim + c;
      for (int dd = 0; dd < kChunk; ++dd) acc[dd] += v[dd] * p;
    }
    for (int dd = 0; dd < kChunk; ++dd) detail::store(ot + (c + dd) * kLanes, acc[dd]);
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
      detail::prefetch(ahead + kvh * G * D, G * D);
      detail::prefetch(ahead + (H + kvh) * D, D);
      detail::prefetch(ahead + (H + KV + kvh) * D, D);
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
        const Vec p = detail::exp(detail::load(st + j * kLanes) - mx);
        detail::store(st + j * kLanes, p);
        sum += p;
      }
      if (Dp % 16 == 0) {
        block_values<16>(st, vb, Dp, jend, ot);
      } else {
        block_values<8>(st, vb, Dp, jend, ot);
      }
      const Vec inv_sum = 1.0f / sum;
      const Vec row_lse = mx + detail::log(sum);  // sum >= 1: the row max contributes exp(0)
      for (int64_t r = 0; r < rows; ++r) {
        float* o = out + ((b * T + i0 + r) * H + h) * D;
        for (int64_t d = 0; d < D; ++d) o[d] = ot[d * kLanes + r] * inv_sum[r];
      }
      detail::store_partial(lse + (b * H + h) * T + i0, row_lse, rows);
    }
  }
}

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
    const Vec k = detail::load(kt + d * kLanes), v = detail::load(vt + d * kLanes);
    for (int r = 0; r < kRows; ++r) {
      s[r] += qs[r * dim + d] * k;
      dp[r] += go[r * dim + d] * v;
    }
  }
  Vec p[kRows], ds[kRows];
  for (int r = 0; r < kRows; ++r) {
    p[r] = detail::exp(s[r] - ls[r]);
    // Keys j0 + lane > i + r are in the future of the row.
    if (i + r - j0 < kLanes - 1) {
      const IVec limit = IVec{} + static_cast<int32_t>(i + r - j0);
      p[r] = detail::lane_index() <= limit ? p[r] : detail::splat(0.0f);
    }
    ds[r] = p[r] * (dp[r] - di[r]);
    detail::store(dsb + r * kLanes, ds[r]);
  }
  for (int64_t d = 0; d < dim; ++d) {
    Vec dv = detail::load(dvt + d * kLanes), dk = detail::load(dkt + d * kLanes);
    for (int r = 0; r < kRows; ++r) {
      dv += go[r * dim + d] * p[r];
      dk += qs[r * dim + d] * ds[r];
    }
    detail::store(dvt + d * kLanes, dv);
    detail::store(dkt + d * kLanes, dk);
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

  const float* base = qkv + b * T * W;
  std::fill(kr, kr + Tp * Dp, 0.0f);
  std::fill(vb + T * D, vb + Tp * D, 0.0f);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t out_row = (b * T + t) * H + kvh * G;  // first head of the group in out/dout
    if (t + kPrefetchRows < T) {
      const float* ahead = base + (t + kPrefetchRows) * W;
      detail::prefetch(ahead + kvh * G * D, G * D);
      detail::prefetch(ahead + (H + kvh) * D, D);
      detail::prefetch(ahead + (H + KV + kvh) * D, D);
      detail::prefetch(out + (out_row + kPrefetchRows * H) * D, G * D);
      detail::prefetch(dout + (out_row + kPrefetchRows * H) * D, G * D);
    }
    const float* row = base + t * W;
    rope_forward(row + (H + kvh) * D, cos + t * half, sin + t * half, half, 1.0f, kr + t * Dp);
    std::copy(row + (H + KV + kvh) * D, row + (H + KV + kvh + 1) * D, vb + t * D);
    for (int64_t g = 0; g < G; ++g) {
      const int64_t r = g * T + t;
      rope_forward(row + (kvh * G + g) * D, cos + t * half, sin + t * half, half, scale, qs + r * D);
      const float* dor = dout + (out_row + g) * D;
      const float* o = out + (out_row + g) * D;
      float acc = 0.0f;
      for (int64_t d = 0; d < D; ++d) {
        go[r * D + d] = dor[d];
        acc += dor[d] * o[d];
      }
      di[r] = acc;
      ls[r] = lse[(b * H + kvh * G + g) * T + t];
    }
  }
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
    const Vec k = detail::load(kt + d * kLanes), v = detail::load(vt + d * kLanes);
    for (int r = 0; r < kRows; ++r) {
      s[r] += qs[d * stride + r] * k;
      dp[r] += go[d * stride + r] * v;
    }
  }
  for (int r = 0; r < kRows; ++r) {
    Vec p = detail::exp(s[r] - ls[r]);
    if (i + r - j0 < kLanes - 1) {
      const IVec limit = IVec{} + static_cast<int32_t>(i + r - j0);
      p = detail::lane_index() <= limit ? p : detail::splat(0.0f);
    }
    detail::store(pb + r * kLanes, p);
    detail::store(dsb + r * kLanes, p * (dp[r] - di[r]));
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
      for (int v = 0; v < kVecs; ++v) a[k][v] = detail::load(acc + (jt + k) * acc_stride + c + v * kLanes);
    for (int64_t i = 0; i < rows; ++i) {
      Vec xv[kVecs];
      for (int v = 0; v < kVecs; ++v) xv[v] = detail::load(x + i * dim + c + v * kLanes);
      for (int k = 0; k < kKeys; ++k) {
        const float wk = w[i * kLanes + jt + k];
        for (int v = 0; v < kVecs; ++v) a[k][v] += wk * xv[v];
      }
    }
    for (int k = 0; k < kKeys; ++k)
      for (int v = 0; v < kVecs; ++v) detail::store(acc + (jt + k) * acc_stride + c + v * kLanes, a[k][v]);
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
    for (int v = 0; v < kVecs; ++v) k[v] = detail::load(kr + jj * dim + c + v * kLanes);
    for (int r = 0; r < kRows; ++r) {
      const float s = ds[r * kLanes + jj];
      for (int v = 0; v < kVecs; ++v) a[r][v] += s * k[v];
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int v = 0; v < kVecs; ++v) {
      float* q = dq + r * dim + c + v * kLanes;
      detail::store(q, detail::load(q) + a[r][v]);
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

  const float* base = qkv + b * T * W;
  std::fill(kr + T * D, kr + Tp * D, 0.0f);
  std::fill(vb + T * D, vb + Tp * D, 0.0f);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t out_row = (b * T + t) * H + kvh * G;  // first head of the group in out/dout
    if (t + kPrefetchRows < T) {
      const float* ahead = base + (t + kPrefetchRows) * W;
      detail::prefetch(ahead + kvh * G * D, G * D);
      detail::prefetch(ahead + (H + kvh) * D, D);
      detail::prefetch(ahead + (H + KV + kvh) * D, D);
      detail::prefetch(out + (out_row + kPrefetchRows * H) * D, G * D);
      detail::prefetch(dout + (out_row + kPrefetchRows * H) * D, G * D);
    }
    const float* row = base + t * W;
    rope_forward(row + (H + kvh) * D, cos + t * half, sin + t * half, half, 1.0f, kr + t * D);
    std::copy(row + (H + KV + kvh) * D, row + (H + KV + kvh + 1) * D, vb + t * D);
    for (int64_t g = 0; g < G; ++g) {
      const int64_t r = g * T + t;
      rope_forward(row + (kvh * G + g) * D, cos + t * half, sin + t * half, half, scale, qs + r * D);
      const float* dor = dout + (out_row + g) * D;
      const float* o = out + (out_row + g) * D;
      // Lane-wise partial sums: a scalar running sum would be one long dependency chain.
      Vec acc = {};
      for (int64_t d = 0; d < D; d += kLanes) {
        const Vec x = detail::load(dor + d);
        detail::store(go + r * D + d, x);
        acc += x * detail::load(o + d);
      }
      di[r] = detail::hsum(acc);
      ls[r] = lse[(b * H + kvh * G + g) * T + t];
    }
  }
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

class CausalAttentionFunction : public torch::autograd::Function<CausalAttentionFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& qkv_in, const at::Tensor& cos,
                            const at::Tensor& sin, int64_t heads, int64_t kv_heads, int64_t head_dim) {
    const at::Tensor qkv = qkv_in.contiguous();
    const Dims dm{qkv.size(0), qkv.size(1), heads, kv_heads, head_dim};
    at::Tensor out = at::empty({dm.batch, dm.seq, heads * head_dim}, qkv.options());
    at::Tensor lse = at::empty({dm.batch, heads, dm.seq}, qkv.options());
    attention_forward(dm, qkv.data_ptr<float>(), cos.data_ptr<float>(), sin.data_ptr<float>(), out.data_ptr<float>(),
                      lse.data_ptr<float>());
    ctx->save_for_backward({qkv, cos, sin, out, lse});
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["kv_heads"] = kv_heads;
    ctx->saved_data["head_dim"] = head_dim;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& qkv = saved[0];
    const Dims dm{qkv.size(0), qkv.size(1), ctx->saved_data["heads"].toInt(), ctx->saved_data["kv_heads"].toInt(),
                  ctx->saved_data["head_dim"].toInt()};
    const at::Tensor dout = grad_outputs[0].contiguous();
    at::Tensor dqkv = at::empty(qkv.sizes(), qkv.options());
    attention_backward(dm, qkv.data_ptr<float>(), saved[1].data_ptr<float>(), saved[2].data_ptr<float>(),
                       saved[3].data_ptr<float>(), saved[4].data_ptr<float>(), dout.data_ptr<float>(),
                       dqkv.data_ptr<float>());
    return {dqkv, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

namespace fused {

at::Tensor causal_attention(const at::Tensor& qkv, const AttentionShape& shape, const RopeTable& rope) {
  const int64_t H = shape.num_heads, KV = shape.num_kv_heads, D = shape.head_dim;
  HNAS_ASSERT(applies_to(qkv), "fused::causal_attention needs a CPU float32 qkv tensor");
  HNAS_ASSERT(H > 0 && KV > 0 && H % KV == 0,
              "fused::causal_attention: num_heads " << H << " must be a positive multiple of num_kv_heads " << KV);
  HNAS_ASSERT(D > 0 && D % 2 == 0, "fused::causal_attention: rotary embedding needs an even head_dim, got " << D);
  HNAS_ASSERT(qkv.dim() == 3 && qkv.size(2) == (H + 2 * KV) * D,
              "fused::causal_attention: qkv " << qkv.sizes() << " must be [B, T, (H + 2 KV) * D] = [B, T, "
                                              << (H + 2 * KV) * D << "]");
  const int64_t T = qkv.size(1);
  for (const at::Tensor* table : {&rope.cos, &rope.sin}) {
    HNAS_ASSERT(applies_to(*table) && table->dim() == 2 && table->size(0) >= T && table->size(1) == D / 2,
                "fused::causal_attention: rope tables must be CPU float32 [>= " << T << ", " << D / 2 << "]");
  }
  return CausalAttentionFunction::apply(qkv, rope.cos.narrow(0, 0, T).contiguous(),
                                        rope.sin.narrow(0, 0, T).contiguous(), H, KV, D);
}

}  // namespace fused
}  // namespace hnas::model
