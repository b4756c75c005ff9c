// SPDX-License-Identifier: Apache-2.0
// FusedAdamW: the update and the gradient norm as loops over one flat index space that
// covers every parameter, split into fixed blocks for at::parallel_for. Written for
// auto-vectorisation; build with -O3 -march=native -fno-math-errno (without the last,
// GCC keeps std::sqrt scalar to preserve errno).
#include "hnas/train/fused_adamw.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "hnas/core/check.hpp"

namespace hnas::train {
namespace {

constexpr int64_t kAlign = 16;       // floats: each parameter's moments start on a cache line
constexpr int64_t kBlock = 1 << 15;  // elements per work item: large enough to amortise dispatch

/// The float32 constants of one parameter's update, rounded once as LibTorch's scalar
/// arguments are.
struct Coefficients {
  float grad_scale;
  float beta1, one_minus_beta1;
  float beta2, one_minus_beta2;
  float sqrt_bias_correction2;
  float eps;
  float decay;      // 1 - lr * weight_decay
  float step_size;  // lr / bias_correction1
};

/// One parameter with a gradient, placed in the flat index space at `offset`.
struct Span {
  float* param;
  const float* grad;
  float* exp_avg;
  float* exp_avg_sq;
  int64_t offset;
  int64_t numel;
  Coefficients c;
};

/// Calls f(span, from, to) for the part [from, to) of each span inside the flat range [begin, end).
template <class F>
void for_each_piece(const std::vector<Span>& spans, int64_t begin, int64_t end, const F& f) {
  auto it = std::upper_bound(spans.begin(), spans.end(), begin,
                             [](int64_t x, const Span& s) { return x < s.offset + s.numel; });
  for (; it != spans.end() && it->offset < end; ++it) {
    const int64_t from = std::max(begin, it->offset) - it->offset;
    const int64_t to = std::min(end, it->offset + it->numel) - it->offset;
    if (from < to) f(*it, from, to);
  }
}

// As torch::optim::AdamW, element-wise: p *= decay; m = beta1 m + (1 - beta1) g;
// v = beta2 v + (1 - beta2) g^2; p -= step_size * m / (sqrt(v) / sqrt(bc2) + eps).
void update(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v, int64_t n,
            const Coefficients& c) {
  for (int64_t i = 0; i < n; ++i) {
    const float grad = g[i] * c.grad_scale;
    const float mi = m[i] * c.beta1 + grad * c.one_minus_beta1;
    const float vi = v[i] * c.beta2 + grad * grad * c.one_minus_beta2;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / c.sqrt_bias_correction2 + c.eps;
    p[i] = p[i] * c.decay - c.step_size * (mi / denom);
  }
}

/// Sum of squares with 16 float lanes (vectorised), returned in double.
double sum_squares(const float* __restrict g, int64_t n) {
  constexpr int kLanes = 16;
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] += g[i + l] * g[i + l];
  double total = 0;
  for (int l = 0; l < kLanes; ++l) total += lanes[l];
  for (; i < n; ++i) total += static_cast<double>(g[i]) * g[i];
  return total;
}

int64_t flat_end(const std::vector<Span>& spans) {
  return spans.empty() ? 0 : spans.back().offset + spans.back().numel;
}

}  // namespace

FusedAdamW::FusedAdamW(std::vector<FusedAdamWGroup> groups, FusedAdamWOptions options) : options_(options) {
  std::set<const void*> seen;
  int64_t total = 0;
  for (auto& group : groups) {
    for (auto& p : group.parameters) {
      HNAS_ASSERT(p.defined() && p.device().is_cpu() && p.scalar_type() == at::kFloat && p.is_contiguous(),
                  "FusedAdamW takes contiguous CPU float32 parameters");
      HNAS_ASSERT(seen.insert(p.unsafeGetTensorImpl()).second, "a parameter is listed twice");
      slots_.push_back({p, total, group.weight_decay});
      total += (p.numel() + kAlign - 1) / kAlign * kAlign;
    }
  }
  exp_avg_ = at::zeros({total}, at::kFloat);
  exp_avg_sq_ = at::zeros({total}, at::kFloat);
}

std::vector<at::Tensor> FusedAdamW::parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& s : slots_) out.push_back(s.parameter);
  return out;
}

at::Tensor FusedAdamW::exp_avg(size_t index) const {
  const auto& s = slots_.at(index);
  return exp_avg_.narrow(0, s.offset, s.parameter.numel()).view(s.parameter.sizes());
}

at::Tensor FusedAdamW::exp_avg_sq(size_t index) const {
  const auto& s = slots_.at(index);
  return exp_avg_sq_.narrow(0, s.offset, s.parameter.numel()).view(s.parameter.sizes());
}

void FusedAdamW::zero_grad() {
  for (auto& s : slots_) s.parameter.mutable_grad().reset();
}

double FusedAdamW::grad_norm() const { return std::sqrt(grad_squared_norm()); }

double FusedAdamW::grad_squared_norm() const {
  std::vector<Span> spans;
  std::vector<at::Tensor> keep;  // contiguous copies of strided gradients, alive for the pass
  for (const auto& s : slots_) {
    const auto& grad = s.parameter.grad();
    if (!grad.defined()) continue;
    keep.push_back(grad.contiguous());
    spans.push_back({nullptr, keep.back().data_ptr<float>(), nullptr, nullptr, s.offset, s.parameter.numel(), {}});
  }
  // Fixed blocks summed in order: the norm does not depend on the thread count.
  const int64_t num_blocks = (flat_end(spans) + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(num_blocks), 0.0);
  at::parallel_for(0, num_blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b)
      for_each_piece(spans, b * kBlock, (b + 1) * kBlock, [&](const Span& s, int64_t from, int64_t to) {
        partial[b] += sum_squares(s.grad + from, to - from);
      });
  });
  double total = 0;
  for (double x : partial) total += x;
  return total;
}

void FusedAdamW::step(double grad_scale) {
  std::vector<Span> spans;
  std::vector<at::Tensor> keep;
  for (auto& s : slots_) {
    const auto& grad = s.parameter.grad();
    if (!grad.defined()) continue;
    HNAS_ASSERT(grad.scalar_type() == at::kFloat && grad.device().is_cpu(), "FusedAdamW needs CPU float32 gradients");
    keep.push_back(grad.contiguous());
    s.steps += 1;
    const double bias_correction1 = 1.0 - std::pow(options_.beta1, static_cast<double>(s.steps));
    const double bias_correction2 = 1.0 - std::pow(options_.beta2, static_cast<double>(s.steps));
    const Coefficients c{static_cast<float>(grad_scale),
                         static_cast<float>(options_.beta1),
                         static_cast<float>(1.0 - options_.beta1),
                         static_cast<float>(options_.beta2),
                         static_cast<float>(1.0 - options_.beta2),
                         static_cast<float>(std::sqrt(bias_correction2)),
                         static_cast<float>(options_.eps),
                         static_cast<float>(1.0 - options_.lr * s.weight_decay),
                         static_cast<float>(options_.lr / bias_correction1)};
    spans.push_back({s.parameter.data_ptr<float>(), keep.back().data_ptr<float>(),
                     exp_avg_.data_ptr<float>() + s.offset, exp_avg_sq_.data_ptr<float>() + s.offset, s.offset,
                     s.parameter.numel(), c});
  }
  at::parallel_for(0, flat_end(spans), kBlock, [&](int64_t begin, int64_t end) {
    for_each_piece(spans, begin, end, [](const Span& s, int64_t from, int64_t to) {
      update(s.param + from, s.grad + from, s.exp_avg + from, s.exp_avg_sq + from, to - from, s.c);
    });
  });
}

double FusedAdamW::clip_and_step(double max_norm) {
  const double norm = grad_norm();
  if (!std::isfinite(norm)) return norm;
  // clip_grad_norm_'s rule: scale by max_norm / (norm + 1e-6) when that is below one.
  const double coefficient = max_norm > 0 ? max_norm / (norm + 1e-6) : 1.0;
  step(std::min(1.0, coefficient));
  return norm;
}

}  // namespace hnas::train
