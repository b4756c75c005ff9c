// SPDX-License-Identifier: Apache-2.0
// Times forward + backward of each fused CPU kernel against the LibTorch reference at the
// search and the larger model scale, and prints milliseconds and the speedup.
// Usage: kernels_bench [repetitions] [threads] [op]   (op: rms_norm, swiglu or attention)
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "hnas/model/ops.hpp"

namespace {

namespace model = hnas::model;

struct Scale {
  const char* name;
  int64_t batch, seq, d_model, heads, kv_heads, head_dim, hidden;
};

/// Fastest of `reps` runs of `step` after two warm-up runs, in milliseconds: the minimum is
/// the statistic least disturbed by other work on a shared machine.
double best_ms(const std::function<void()>& step, int reps) {
  step();
  step();
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    step();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return *std::min_element(times.begin(), times.end());
}

/// Forward only, without autograd.
std::function<void()> fwd(const std::function<torch::Tensor(const torch::Tensor&)>& op, torch::Tensor input) {
  return [op, input]() {
    torch::NoGradGuard no_grad;
    op(input);
  };
}

/// Forward, then backward from a fixed upstream gradient, of `op` on a leaf input.
std::function<void()> fwd_bwd(const std::function<torch::Tensor(const torch::Tensor&)>& op, torch::Tensor input,
                              std::vector<torch::Tensor> params = {}) {
  input.requires_grad_(true);
  const torch::Tensor dout = torch::randn_like(op(input).detach());
  return [op, input, params, dout]() mutable {
    input.mutable_grad() = torch::Tensor();
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
    op(input).backward(dout);
  };
}

using Op = std::function<torch::Tensor(const torch::Tensor&)>;

void report(const char* scale, const char* name, const Op& fused, const Op& reference, const torch::Tensor& input,
            std::vector<torch::Tensor> params, int reps) {
  const double fused_ms = best_ms(fwd_bwd(fused, input.clone(), params), reps);
  const double reference_ms = best_ms(fwd_bwd(reference, input.clone(), params), reps);
  const double fused_fwd_ms = best_ms(fwd(fused, input), reps);
  const double reference_fwd_ms = best_ms(fwd(reference, input), reps);
  std::printf(
      "%-7s %-10s fwd+bwd: fused %8.3f ms  reference %8.3f ms  speedup %6.2fx | fwd: %7.3f / %7.3f ms  %6.2fx\n", scale,
      name, fused_ms, reference_ms, reference_ms / fused_ms, fused_fwd_ms, reference_fwd_ms,
      reference_fwd_ms / fused_fwd_ms);
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 20;
  if (argc > 2) at::set_num_threads(std::max(1, std::atoi(argv[2])));
  const char* only = argc > 3 ? argv[3] : nullptr;
  auto wanted = [only](const char* op) { return only == nullptr || std::strcmp(only, op) == 0; };
  torch::manual_seed(0);
  std::printf("threads %d, %d repetitions, best time\n", at::get_num_threads(), reps);
  const Scale scales[] = {{"search", 32, 128, 128, 16, 4, 8, 352},
                          {"larger", 8, 256, 512, 8, 4, 64, 1536},
                          {"mad64", 32, 64, 64, 4, 2, 16, 192},
                          {"quick", 8, 256, 128, 4, 2, 32, 384}};
  for (const Scale& s : scales) {
    if (wanted("rms_norm")) {
      auto weight = torch::ones({s.d_model}).requires_grad_(true);
      auto x = torch::randn({s.batch, s.seq, s.d_model});
      report(
          s.name, "rms_norm", [&](const torch::Tensor& t) { return model::fused::rms_norm(t, weight, 1e-5); },
          [&](const torch::Tensor& t) { return model::reference::rms_norm(t, weight, 1e-5); }, x, {weight}, reps);
    }
    if (wanted("swiglu")) {
      auto gate_up = torch::randn({s.batch, s.seq, 2 * s.hidden});
      report(
          s.name, "swiglu", [](const torch::Tensor& t) { return model::fused::swiglu(t); },
          [](const torch::Tensor& t) { return model::reference::swiglu(t); }, gate_up, {}, reps);
    }
    if (wanted("attention")) {
      const model::AttentionShape shape{s.heads, s.kv_heads, s.head_dim};
      const auto rope = model::make_rope_table(s.seq, s.head_dim, 10000.0, torch::TensorOptions());
      auto qkv = torch::randn({s.batch, s.seq, (s.heads + 2 * s.kv_heads) * s.head_dim});
      report(
          s.name, "attention", [&](const torch::Tensor& t) { return model::fused::causal_attention(t, shape, rope); },
          [&](const torch::Tensor& t) { return model::reference::causal_attention(t, shape, rope); }, qkv, {}, reps);
    }
  }
  return 0;
}
