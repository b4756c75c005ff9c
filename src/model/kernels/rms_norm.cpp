// SPDX-License-Identifier: Apache-2.0
// Fused RMSNorm for CPU float32: one pass forward (saving the per-row 1/rms), one pass
// backward for dx with per-block dweight partials summed in a fixed order (deterministic).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>

#include "hnas/core/check.hpp"
#include "hnas/model/ops.hpp"
#include "simd.hpp"

namespace hnas::model {
namespace {

using simd::kLanes;
using simd::Vec;

/// Sum of a[c] * b[c] over c < n with kLanes partial sums.
float dot(const float* a, const float* b, int64_t n) {
  Vec acc = {};
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) acc += simd::load(a + c) * simd::load(b + c);
  if (c < n) acc += simd::load_partial(a + c, n - c) * simd::load_partial(b + c, n - c);
  return simd::hsum(acc);
}

void rms_norm_forward(const float* x, const float* weight, float eps, int64_t rows, int64_t width, float* y,
                      float* inv_rms) {
  const int64_t grain = std::max<int64_t>(1, 16384 / width);
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const float* xr = x + row * width;
      float* yr = y + row * width;
      const float inv = 1.0f / std::sqrt(dot(xr, xr, width) / static_cast<float>(width) + eps);
      inv_rms[row] = inv;
      int64_t c = 0;
      for (; c + kLanes <= width; c += kLanes) simd::store(yr + c, simd::load(xr + c) * inv * simd::load(weight + c));
      for (; c < width; ++c) yr[c] = xr[c] * inv * weight[c];
    }
  });
}

// With g = dy * w and xhat = x * inv: dx = inv * g - x * inv^3 * sum(g * x) / width and
// dweight = sum over rows of dy * xhat.
void rms_norm_backward(const float* x, const float* weight, const float* inv_rms, const float* dy, int64_t rows,
                       int64_t width, float* dx, float* dweight) {
  // Fixed row blocks, independent of the thread count, so dweight is reproducible.
  // At most 256 blocks bounds the partials at 256 rows' worth.
  const int64_t rows_per_block = std::max({int64_t{1}, 8192 / width, (rows + 255) / 256});
  const int64_t num_blocks = (rows + rows_per_block - 1) / rows_per_block;
  simd::Scratch partials(dweight != nullptr ? num_blocks * width : 1);
  at::parallel_for(0, num_blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) {
      float* pw = partials.get() + block * width;
      if (dweight != nullptr) std::fill(pw, pw + width, 0.0f);
      const int64_t row_end = std::min(rows, (block + 1) * rows_per_block);
      for (int64_t row = block * rows_per_block; row < row_end; ++row) {
        const float* xr = x + row * width;
        const float* dyr = dy + row * width;
        const float inv = inv_rms[row];
        if (dx != nullptr) {
          Vec acc = {};
          int64_t c = 0;
          for (; c + kLanes <= width; c += kLanes)
            acc += simd::load(dyr + c) * simd::load(weight + c) * simd::load(xr + c);
          float gx = simd::hsum(acc);
          for (; c < width; ++c) gx += dyr[c] * weight[c] * xr[c];
          const float k = inv * inv * inv * gx / static_cast<float>(width);
          float* dxr = dx + row * width;
          c = 0;
          for (; c + kLanes <= width; c += kLanes)
            simd::store(dxr + c, inv * simd::load(dyr + c) * simd::load(weight + c) - k * simd::load(xr + c));
          for (; c < width; ++c) dxr[c] = inv * dyr[c] * weight[c] - k * xr[c];
        }
        if (dweight != nullptr) {
          int64_t c = 0;
          for (; c + kLanes <= width; c += kLanes)
            simd::store(pw + c, simd::load(pw + c) + simd::load(dyr + c) * simd::load(xr + c) * inv);
          for (; c < width; ++c) pw[c] += dyr[c] * xr[c] * inv;
        }
      }
    }
  });
  if (dweight == nullptr) return;
  std::fill(dweight, dweight + width, 0.0f);
  for (int64_t block = 0; block < num_blocks; ++block) {
    const float* pw = partials.get() + block * width;
    for (int64_t c = 0; c < width; ++c) dweight[c] += pw[c];
  }
}

class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& weight_in,
                            double eps) {
    const at::Tensor x = x_in.contiguous();
    const at::Tensor weight = weight_in.contiguous();
    const int64_t width = x.size(-1);
    const int64_t rows = width > 0 ? x.numel() / width : 0;
    at::Tensor y = at::empty(x.sizes(), x.options());
    at::Tensor inv_rms = at::empty({rows}, x.options());
    rms_norm_forward(x.data_ptr<float>(), weight.data_ptr<float>(), static_cast<float>(eps), rows, width,
                     y.data_ptr<float>(), inv_rms.data_ptr<float>());
    ctx->save_for_backward({x, weight, inv_rms});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor& inv_rms = saved[2];
    const at::Tensor dy = grad_outputs[0].contiguous();
    const int64_t width = x.size(-1);
    const int64_t rows = inv_rms.size(0);
    at::Tensor dx, dweight;
    if (ctx->needs_input_grad(0)) dx = at::empty(x.sizes(), x.options());
    if (ctx->needs_input_grad(1)) dweight = at::empty(weight.sizes(), weight.options());
    rms_norm_backward(x.data_ptr<float>(), weight.data_ptr<float>(), inv_rms.data_ptr<float>(), dy.data_ptr<float>(),
                      rows, width, dx.defined() ? dx.data_ptr<float>() : nullptr,
                      dweight.defined() ? dweight.data_ptr<float>() : nullptr);
    return {dx, dweight, at::Tensor()};
  }
};

}  // namespace

namespace fused {

bool applies_to(const at::Tensor& t) { return t.defined() && t.device().is_cpu() && t.scalar_type() == at::kFloat; }

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  HNAS_ASSERT(applies_to(x) && applies_to(weight), "fused::rms_norm needs CPU float32 x and weight");
  HNAS_ASSERT(x.dim() >= 1 && x.size(-1) > 0 && weight.dim() == 1 && weight.size(0) == x.size(-1),
              "fused::rms_norm: weight " << weight.sizes() << " must match the last dimension of x " << x.sizes());
  return RmsNormFunction::apply(x, weight, eps);
}

}  // namespace fused
}  // namespace hnas::model
