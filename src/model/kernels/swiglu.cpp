// SPDX-License-Identifier: Apache-2.0
// Fused SwiGLU for CPU float32: out = silu(gate) * up in one pass over [gate | up]; the
// backward recomputes the sigmoid instead of saving it, trading a cheap exp for memory.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "hnas/core/check.hpp"
#include "hnas/model/ops.hpp"
#include "simd.hpp"

namespace hnas::model {
namespace {

using simd::kLanes;
using simd::Vec;

inline Vec sigmoid(const Vec& g) { return 1.0f / (1.0f + simd::exp(-g)); }

void swiglu_forward(const float* gate_up, int64_t rows, int64_t hidden, float* out) {
  const int64_t grain = std::max<int64_t>(1, 16384 / hidden);
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const float* gate = gate_up + row * 2 * hidden;
      const float* up = gate + hidden;
      float* o = out + row * hidden;
      int64_t c = 0;
      for (; c + kLanes <= hidden; c += kLanes) {
        const Vec g = simd::load(gate + c);
        simd::store(o + c, g * sigmoid(g) * simd::load(up + c));
      }
      if (c < hidden) {
        const int64_t n = hidden - c;
        const Vec g = simd::load_partial(gate + c, n);
        simd::store_partial(o + c, g * sigmoid(g) * simd::load_partial(up + c, n), n);
      }
    }
  });
}

// d gate = dy * up * s * (1 + g * (1 - s)) with s = sigmoid(g); d up = dy * g * s.
inline void swiglu_backward_chunk(const Vec& g, const Vec& u, const Vec& dy, Vec& dg, Vec& du) {
  const Vec s = sigmoid(g);
  dg = dy * u * s * (1.0f + g * (1.0f - s));
  du = dy * g * s;
}

void swiglu_backward(const float* gate_up, const float* dy, int64_t rows, int64_t hidden, float* d_gate_up) {
  const int64_t grain = std::max<int64_t>(1, 8192 / hidden);
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const float* gate = gate_up + row * 2 * hidden;
      const float* up = gate + hidden;
      const float* dyr = dy + row * hidden;
      float* dgate = d_gate_up + row * 2 * hidden;
      float* dup = dgate + hidden;
      int64_t c = 0;
      Vec dg, du;
      for (; c + kLanes <= hidden; c += kLanes) {
        swiglu_backward_chunk(simd::load(gate + c), simd::load(up + c), simd::load(dyr + c), dg, du);
        simd::store(dgate + c, dg);
        simd::store(dup + c, du);
      }
      if (c < hidden) {
        const int64_t n = hidden - c;
        swiglu_backward_chunk(simd::load_partial(gate + c, n), simd::load_partial(up + c, n),
                              simd::load_partial(dyr + c, n), dg, du);
        simd::store_partial(dgate + c, dg, n);
        simd::store_partial(dup + c, du, n);
      }
    }
  });
}

class SwigluFunction : public torch::autograd::Function<SwigluFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& gate_up_in) {
    const at::Tensor gate_up = gate_up_in.contiguous();
    const int64_t hidden = gate_up.size(-1) / 2;
    const int64_t rows = gate_up.numel() / (2 * hidden);
    auto out_sizes = gate_up.sizes().vec();
    out_sizes.back() = hidden;
    at::Tensor out = at::empty(out_sizes, gate_up.options());
    swiglu_forward(gate_up.data_ptr<float>(), rows, hidden, out.data_ptr<float>());
    ctx->save_for_backward({gate_up});
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const at::Tensor gate_up = ctx->get_saved_variables()[0];
    const at::Tensor dy = grad_outputs[0].contiguous();
    const int64_t hidden = gate_up.size(-1) / 2;
    const int64_t rows = gate_up.numel() / (2 * hidden);
    at::Tensor d_gate_up = at::empty(gate_up.sizes(), gate_up.options());
    swiglu_backward(gate_up.data_ptr<float>(), dy.data_ptr<float>(), rows, hidden, d_gate_up.data_ptr<float>());
    return {d_gate_up};
  }
};

}  // namespace

namespace fused {

at::Tensor swiglu(const at::Tensor& gate_up) {
  HNAS_ASSERT(applies_to(gate_up), "fused::swiglu needs a CPU float32 tensor");
  HNAS_ASSERT(gate_up.dim() >= 1 && gate_up.size(-1) > 0 && gate_up.size(-1) % 2 == 0,
              "fused::swiglu: the last dimension of gate_up " << gate_up.sizes()
                                                              << " must hold gate and up halves of equal size");
  return SwigluFunction::apply(gate_up);
}

}  // namespace fused
}  // namespace hnas::model
