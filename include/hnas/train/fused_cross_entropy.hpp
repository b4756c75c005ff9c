// SPDX-License-Identifier: Apache-2.0
// Summed cross-entropy of CPU float32 logits with its gradient formed in the same pass:
// each row's softmax is computed once, and softmax - onehot is kept for the backward
// instead of LibTorch's log_softmax output plus a separate nll and softmax-backward pass.
//
//   auto loss = train::fused_summed_cross_entropy(logits.reshape({-1, V}), targets.reshape({-1}), -100);
// Rank-local; parallel over rows internally, deterministic for any thread count.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace hnas::train {

/// Whether fused_summed_cross_entropy takes these logits (CPU float32).
bool fused_cross_entropy_applies_to(const at::Tensor& logits);

/// sum over rows n with targets[n] != ignore_index of -log softmax(logits[n])[targets[n]];
/// logits [N, V] CPU float32, targets [N] integer. A 0-dim float32 tensor, differentiable
/// w.r.t. the logits; ignored rows get zero gradient.
at::Tensor fused_summed_cross_entropy(const at::Tensor& logits, const at::Tensor& targets, int64_t ignore_index);

}  // namespace hnas::train
