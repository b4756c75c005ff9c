// SPDX-License-Identifier: Apache-2.0
// Module-private: the pieces shared by the fused attention's forward and backward passes
// (problem sizes, per-thread scratch, rotary embedding, causal masking) and their entry
// points. The work split and the vector layouts are described here; see attention.cpp
// for the autograd wiring.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>

#include "simd.hpp"

namespace hnas::model::attention_impl {

using simd::IVec;
using simd::kLanes;
using simd::round_up;
using simd::Vec;
using simd::Vec8;

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
  simd::Scratch scratch_;
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
  return simd::lane_index() >= limit ? v : simd::splat(fill);
}

/// Output [B, T, H, D] and per-row logsumexp [B, H, T] of causal attention over the packed
/// qkv [B, T, (H + 2 KV) D] with rotary tables [T, D/2]. Parallel over (batch, kv head).
void attention_forward(const Dims& dm, const float* qkv, const float* cos, const float* sin, float* out, float* lse);

/// d_qkv (packed like qkv) from the forward's inputs, output and logsumexp and the output
/// gradient dout [B, T, H, D]. Parallel over (batch, kv head); deterministic.
void attention_backward(const Dims& dm, const float* qkv, const float* cos, const float* sin, const float* out,
                        const float* lse, const float* dout, float* dqkv);

}  // namespace hnas::model::attention_impl
