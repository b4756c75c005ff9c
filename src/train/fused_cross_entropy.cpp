// SPDX-License-Identifier: Apache-2.0
// Fused summed cross-entropy: one parallel pass over the rows computes each row's loss and,
// when a gradient is wanted, writes softmax - onehot into a buffer that the backward only
// scales by the upstream gradient. Reuses the model kernels' vectorised exp (header-only):
// glibc's expf stays scalar without -ffast-math, which would cost more than the rest.
#include "hnas/train/fused_cross_entropy.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "hnas/core/check.hpp"
#include "simd.hpp"

namespace hnas::train {
namespace {

using simd::kLanes;
using simd::Vec;

/// The loss of one row; with grad != nullptr also writes its gradient softmax - onehot.
float row_loss(const float* x, int64_t vocab, int64_t target, float* grad) {
  const int64_t full = vocab / kLanes * kLanes;
  Vec vmax = simd::splat(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < full; j += kLanes) vmax = simd::vmax(vmax, simd::load(x + j));
  float mx = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < kLanes; ++i) mx = std::max(mx, vmax[i]);
  for (int64_t j = full; j < vocab; ++j) mx = std::max(mx, x[j]);

  Vec vsum = {};
  for (int64_t j = 0; j < full; j += kLanes) {
    const Vec e = simd::exp(simd::load(x + j) - mx);
    if (grad != nullptr) simd::store(grad + j, e);
    vsum += e;
  }
  float sum = simd::hsum(vsum);
  for (int64_t j = full; j < vocab; ++j) {
    const float e = std::exp(x[j] - mx);
    if (grad != nullptr) grad[j] = e;
    sum += e;
  }
  if (grad != nullptr) {
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < vocab; ++j) grad[j] *= inv;
    grad[target] -= 1.0f;
  }
  return mx + std::log(sum) - x[target];  // sum >= 1: the max contributes exp(0)
}

/// Rows per work item: enough to amortise dispatch at small vocabularies.
int64_t grain_rows(int64_t vocab) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(vocab, 1)); }

class FusedCrossEntropyFunction : public torch::autograd::Function<FusedCrossEntropyFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits_in,
                            const at::Tensor& targets, int64_t ignore_index) {
    const at::Tensor logits = logits_in.contiguous();
    const int64_t rows = logits.size(0), vocab = logits.size(1);
    const bool want_grad = logits_in.requires_grad();
    at::Tensor grad = want_grad ? at::empty_like(logits) : at::Tensor();
    const float* x = logits.data_ptr<float>();
    const int64_t* t = targets.data_ptr<int64_t>();
    float* g = want_grad ? grad.data_ptr<float>() : nullptr;
    std::vector<float> losses(static_cast<size_t>(rows));
    at::parallel_for(0, rows, grain_rows(vocab), [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        float* gn = g != nullptr ? g + n * vocab : nullptr;
        if (t[n] == ignore_index) {
          losses[n] = 0.0f;
          if (gn != nullptr) std::fill(gn, gn + vocab, 0.0f);
        } else {
          losses[n] = row_loss(x + n * vocab, vocab, t[n], gn);
        }
      }
    });
    // In row order, whatever the thread count: the loss is deterministic.
    double total = 0.0;
    for (float l : losses) total += l;
    if (want_grad) ctx->save_for_backward({grad});
    return at::scalar_tensor(total, logits.options());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const at::Tensor grad = ctx->get_saved_variables()[0];
    return {grad * grad_outputs[0], at::Tensor(), at::Tensor()};
  }
};

}  // namespace

bool fused_cross_entropy_applies_to(const at::Tensor& logits) {
  return logits.defined() && logits.device().is_cpu() && logits.scalar_type() == at::kFloat;
}

at::Tensor fused_summed_cross_entropy(const at::Tensor& logits, const at::Tensor& targets, int64_t ignore_index) {
  HNAS_ASSERT(fused_cross_entropy_applies_to(logits), "fused_summed_cross_entropy needs CPU float32 logits");
  HNAS_ASSERT(logits.dim() == 2 && targets.dim() == 1 && targets.size(0) == logits.size(0),
              "fused_summed_cross_entropy: logits " << logits.sizes() << " must be [N, V] and targets "
                                                    << targets.sizes() << " [N]");
  const at::Tensor t = targets.to(at::kLong).contiguous();
  const int64_t vocab = logits.size(1);
  // Checked up front: an out-of-range target would index past its row.
  const int64_t* tp = t.data_ptr<int64_t>();
  for (int64_t n = 0; n < t.size(0); ++n) {
    HNAS_ASSERT(tp[n] == ignore_index || (tp[n] >= 0 && tp[n] < vocab),
                "fused_summed_cross_entropy: target " << tp[n] << " out of range for " << vocab << " classes");
  }
  return FusedCrossEntropyFunction::apply(logits, t, ignore_index);
}

}  // namespace hnas::train
