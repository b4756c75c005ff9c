// SPDX-License-Identifier: Apache-2.0
// The fused CPU kernels against the LibTorch reference composition run in double precision:
// outputs, every input gradient, odd shapes, non-contiguous inputs and causality.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "hnas/core/error.hpp"
#include "hnas/model/ops.hpp"

namespace {

namespace model = hnas::model;

/// |actual - expected| <= rtol * |expected| + atol * max(1, max |expected|), elementwise.
void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, double rtol, double atol,
                  const std::string& what) {
  ASSERT_TRUE(actual.defined()) << what << ": undefined";
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const auto a = actual.detach().to(torch::kFloat64);
  const auto e = expected.detach().to(torch::kFloat64);
  const double scale = std::max(1.0, e.abs().max().item<double>());
  const auto diff = (a - e).abs();
  const double excess = (diff - (rtol * e.abs() + atol * scale)).max().item<double>();
  EXPECT_LE(excess, 0.0) << what << ": max |diff| " << diff.max().item<double>() << " (scale " << scale << ")";
}

/// max |actual - expected| / max(1, max |expected|).
double scaled_error(const torch::Tensor& actual, const torch::Tensor& expected) {
  const auto e = expected.detach().to(torch::kFloat64);
  const double scale = std::max(1.0, e.abs().max().item<double>());
  return (actual.detach().to(torch::kFloat64) - e).abs().max().item<double>() / scale;
}

torch::Tensor randn(std::vector<int64_t> sizes, double stddev = 1.0) {
  return torch::randn(sizes, torch::kFloat32) * stddev;
}

// ---------------------------------------------------------------- RMSNorm

void check_rms_norm(const torch::Tensor& x_in, const std::string& what) {
  const double eps = 1e-5;
  const int64_t width = x_in.size(-1);
  auto x = x_in.detach().requires_grad_(true);
  auto w = (randn({width}) * 0.5 + 1.0).requires_grad_(true);
  auto y = model::fused::rms_norm(x, w, eps);
  EXPECT_TRUE(y.is_contiguous()) << what;
  auto dy = randn(y.sizes().vec());
  y.backward(dy);

  auto xd = x.detach().to(torch::kFloat64).requires_grad_(true);
  auto wd = w.detach().to(torch::kFloat64).requires_grad_(true);
  auto yd = model::reference::rms_norm(xd, wd, eps);
  yd.backward(dy.to(torch::kFloat64));
  expect_close(y, yd, 1e-5, 1e-6, what + " y");
  expect_close(x.grad(), xd.grad(), 1e-5, 1e-6, what + " dx");
  expect_close(w.grad(), wd.grad(), 1e-5, 1e-6, what + " dweight");
}

TEST(FusedRmsNorm, matches_reference_on_odd_shapes) {
  torch::manual_seed(1);
  const std::vector<std::vector<int64_t>> shapes = {{1, 1, 1},      {3, 7, 5}, {2, 33, 129}, {4, 128},
                                                    {32, 128, 128}, {5, 512},  {300, 16},    {2, 3, 17}};
  for (const auto& shape : shapes) {
    std::ostringstream what;
    what << "x " << torch::IntArrayRef(shape);
    check_rms_norm(randn(shape, 2.0), what.str());
  }
}

TEST(FusedRmsNorm, accepts_non_contiguous_input) {
  torch::manual_seed(2);
  check_rms_norm(randn({4, 9, 66}).slice(-1, 0, 66, 2), "strided last dim");
  check_rms_norm(randn({3, 20, 5}).transpose(0, 1), "transposed");
}

TEST(FusedRmsNorm, gradient_flows_only_where_required) {
  torch::manual_seed(3);
  auto x = randn({6, 10});
  auto w = torch::ones({10}).requires_grad_(true);
  model::fused::rms_norm(x, w, 1e-6).sum().backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_GT(w.grad().abs().sum().item<double>(), 0.0);
  EXPECT_FALSE(x.grad().defined());
}

TEST(FusedRmsNorm, rejects_bad_inputs) {
  EXPECT_THROW(model::fused::rms_norm(torch::ones({2, 4}), torch::ones({5}), 1e-5), hnas::InternalError);
  EXPECT_THROW(model::fused::rms_norm(torch::ones({2, 4}, torch::kFloat64), torch::ones({4}), 1e-5),
               hnas::InternalError);
}

// ---------------------------------------------------------------- SwiGLU

void check_swiglu(const torch::Tensor& gate_up_in, const std::string& what) {
  auto gate_up = gate_up_in.detach().requires_grad_(true);
  auto y = model::fused::swiglu(gate_up);
  EXPECT_TRUE(y.is_contiguous()) << what;
  auto dy = randn(y.sizes().vec());
  y.backward(dy);

  auto gd = gate_up.detach().to(torch::kFloat64).requires_grad_(true);
  auto yd = model::reference::swiglu(gd);
  yd.backward(dy.to(torch::kFloat64));
  expect_close(y, yd, 1e-5, 1e-6, what + " y");
  expect_close(gate_up.grad(), gd.grad(), 1e-5, 1e-6, what + " d gate_up");
}

TEST(FusedSwiglu, matches_reference_on_odd_shapes) {
  torch::manual_seed(4);
  const std::vector<std::vector<int64_t>> shapes = {{1, 1, 2},  {3, 7, 10}, {2, 33, 34}, {4, 704},
                                                    {2, 5, 66}, {64, 32},   {1, 2, 3072}};
  for (const auto& shape : shapes) {
    std::ostringstream what;
    what << "gate_up " << torch::IntArrayRef(shape);
    check_swiglu(randn(shape, 3.0), what.str());
  }
}

TEST(FusedSwiglu, accepts_non_contiguous_input) {
  torch::manual_seed(5);
  check_swiglu(randn({3, 8, 40}).narrow(-1, 3, 34), "narrowed rows");
  check_swiglu(randn({10, 6, 3}).transpose(0, 2), "transposed");
}

TEST(FusedSwiglu, stays_accurate_over_the_whole_exp_range) {
  // The kernel's own exp: silu(g) = g / (1 + exp(-g)) inherits its relative error.
  const int64_t n = 200001;
  auto gate = torch::linspace(-100.0, 100.0, n, torch::kFloat32);
  auto gate_up = torch::cat({gate, torch::ones({n})}).view({1, 2 * n});  // one row: [gate | up = 1]
  auto y = model::fused::swiglu(gate_up).to(torch::kFloat64);
  auto g = gate.to(torch::kFloat64);
  auto expected = g / (1.0 + torch::exp(-g));
  auto rel = ((y - expected).abs() / expected.abs().clamp_min(1e-300)).view({n});
  // Below exp's flush point (-87.3) silu is below 1e-36: compare those absolutely.
  auto in_range = g > -87.0;
  EXPECT_LE(rel.masked_select(in_range).max().item<double>(), 5e-7);
  EXPECT_LE((y - expected).abs().masked_select(~in_range).max().item<double>(), 1e-35);
}

TEST(FusedSwiglu, propagates_nan) {
  auto gate_up = torch::zeros({1, 4});
  gate_up[0][0] = std::numeric_limits<float>::quiet_NaN();
  auto y = model::fused::swiglu(gate_up);
  EXPECT_TRUE(std::isnan(y[0][0].item<float>()));
  EXPECT_FALSE(std::isnan(y[0][1].item<float>()));
}

// ---------------------------------------------------------------- attention

struct AttentionCase {
  int64_t batch, seq, heads, kv_heads, head_dim;
  double stddev = 1.0;
};

std::string describe(const AttentionCase& c) {
  std::ostringstream s;
  s << "B=" << c.batch << " T=" << c.seq << " H=" << c.heads << " KV=" << c.kv_heads << " D=" << c.head_dim
    << " std=" << c.stddev;
  return s.str();
}

void check_attention(const AttentionCase& c, const torch::Tensor& qkv_in) {
  const model::AttentionShape shape{c.heads, c.kv_heads, c.head_dim};
  // A longer table than needed: only its first T rows may be read.
  const auto rope = model::make_rope_table(c.seq + 5, c.head_dim, 10000.0, torch::TensorOptions());
  auto qkv = qkv_in.detach().requires_grad_(true);
  auto out = model::fused::causal_attention(qkv, shape, rope);
  EXPECT_TRUE(out.is_contiguous()) << describe(c);
  auto dout = randn(out.sizes().vec());
  out.backward(dout);

  auto qkv_d = qkv.detach().to(torch::kFloat64).requires_grad_(true);
  auto out_d = model::reference::causal_attention(qkv_d, shape, rope);
  out_d.backward(dout.to(torch::kFloat64));
  // LibTorch's float32 composition sets the bar: a flash-style kernel recomputes the
  // probabilities in backward, so allow a few times its error (and 1e-6 of the scale).
  auto qkv_f = qkv.detach().clone().requires_grad_(true);
  auto out_f = model::reference::causal_attention(qkv_f, shape, rope);
  out_f.backward(dout);
  const double out_bar = std::max(5.0 * scaled_error(out_f, out_d), 1e-6);
  const double grad_bar = std::max(5.0 * scaled_error(qkv_f.grad(), qkv_d.grad()), 1e-6);
  EXPECT_LE(scaled_error(out, out_d), out_bar) << describe(c) << " out";
  EXPECT_LE(scaled_error(qkv.grad(), qkv_d.grad()), grad_bar) << describe(c) << " d qkv";
}

TEST(FusedAttention, matches_reference_on_many_shapes) {
  torch::manual_seed(6);
  const std::vector<AttentionCase> cases = {{1, 1, 2, 1, 8},       {3, 7, 6, 2, 6},
                                            {2, 33, 4, 4, 2},  // T=1, H=6/KV=2, MHA with D=2
                                            {2, 33, 4, 1, 8},      {1, 17, 3, 1, 16},
                                            {2, 128, 16, 4, 8},  // MQA, search scale
                                            {1, 100, 4, 2, 64},    {1, 40, 2, 2, 32},
                                            {1, 20, 2, 1, 128},    {1, 257, 2, 1, 8},
                                            {2, 48, 4, 2, 8, 4.0}, {1, 64, 2, 1, 64, 3.0},
                                            {3, 16, 2, 2, 4},      {1, 45, 4, 2, 48},
                                            {1, 70, 2, 1, 112}};  // register tiles of 32 + 16 and 64 + 32 + 16 columns
  for (const auto& c : cases) {
    const int64_t width = (c.heads + 2 * c.kv_heads) * c.head_dim;
    check_attention(c, randn({c.batch, c.seq, width}, c.stddev));
  }
}

TEST(FusedAttention, accepts_non_contiguous_input) {
  torch::manual_seed(7);
  const AttentionCase c{2, 19, 4, 2, 8};
  const int64_t width = (c.heads + 2 * c.kv_heads) * c.head_dim;
  check_attention(c, randn({c.batch, width, c.seq}).transpose(1, 2));
  check_attention(c, randn({c.batch, c.seq, width + 6}).narrow(2, 3, width));
}

TEST(FusedAttention, is_causal_bit_for_bit) {
  torch::manual_seed(8);
  for (const AttentionCase& c : {AttentionCase{2, 40, 4, 2, 8}, AttentionCase{1, 70, 2, 1, 64}}) {
    const model::AttentionShape shape{c.heads, c.kv_heads, c.head_dim};
    const auto rope = model::make_rope_table(c.seq, c.head_dim, 10000.0, torch::TensorOptions());
    auto qkv = randn({c.batch, c.seq, (c.heads + 2 * c.kv_heads) * c.head_dim});
    auto out = model::fused::causal_attention(qkv, shape, rope);
    for (int64_t t0 : {1L, 5L, 17L, c.seq - 1}) {
      auto changed = qkv.clone();
      changed.narrow(1, t0, c.seq - t0).copy_(randn({c.batch, c.seq - t0, qkv.size(2)}, 5.0));
      auto out2 = model::fused::causal_attention(changed, shape, rope);
      EXPECT_TRUE(torch::equal(out.narrow(1, 0, t0), out2.narrow(1, 0, t0))) << describe(c) << " t0=" << t0;
      EXPECT_FALSE(torch::equal(out.narrow(1, t0, 1), out2.narrow(1, t0, 1))) << describe(c) << " t0=" << t0;
    }
  }
}

TEST(FusedAttention, gradient_reaches_queries_keys_and_values) {
  torch::manual_seed(9);
  const model::AttentionShape shape{6, 2, 8};
  const auto rope = model::make_rope_table(12, 8, 10000.0, torch::TensorOptions());
  auto qkv = randn({2, 12, 10 * 8}).requires_grad_(true);
  model::fused::causal_attention(qkv, shape, rope).pow(2).sum().backward();
  ASSERT_TRUE(qkv.grad().defined());
  const auto parts = qkv.grad().split({48, 16, 16}, -1);
  // The first query attends to one key only, so its gradient is zero: look at t >= 1.
  for (int p = 0; p < 3; ++p) EXPECT_GT(parts[p].narrow(1, 1, 11).abs().min().item<double>(), 0.0) << "part " << p;
}

TEST(FusedAttention, runs_without_autograd) {
  const model::AttentionShape shape{2, 1, 8};
  const auto rope = model::make_rope_table(5, 8, 10000.0, torch::TensorOptions());
  torch::NoGradGuard no_grad;
  auto out = model::fused::causal_attention(randn({1, 5, 32}), shape, rope);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 5, 16}));
}

TEST(FusedAttention, rejects_bad_shapes) {
  const auto rope = model::make_rope_table(8, 8, 10000.0, torch::TensorOptions());
  EXPECT_THROW(model::fused::causal_attention(torch::zeros({1, 4, 33}), {2, 1, 8}, rope), hnas::InternalError);
  EXPECT_THROW(model::fused::causal_attention(torch::zeros({1, 4, 56}), {3, 2, 8}, rope), hnas::InternalError);
  EXPECT_THROW(model::fused::causal_attention(torch::zeros({1, 9, 32}), {2, 1, 8}, rope), hnas::InternalError);
}

/// Restores the intra-op thread count on scope exit.
class ThreadCountGuard {
 public:
  ThreadCountGuard() : saved_(at::get_num_threads()) {}
  ~ThreadCountGuard() { at::set_num_threads(saved_); }
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;

 private:
  int saved_;
};

TEST(FusedKernels, results_do_not_depend_on_the_thread_count) {
  torch::manual_seed(10);
  const model::AttentionShape shape{4, 2, 8};
  const auto rope = model::make_rope_table(37, 8, 10000.0, torch::TensorOptions());
  const auto qkv_data = randn({3, 37, 64});
  // Head dim 32 takes the register-tiled backward.
  const model::AttentionShape wide_shape{4, 2, 32};
  const auto wide_rope = model::make_rope_table(37, 32, 10000.0, torch::TensorOptions());
  const auto wide_data = randn({3, 37, 256});
  const auto x_data = randn({300, 48});
  auto run = [&](int threads) {
    at::set_num_threads(threads);
    auto qkv = qkv_data.clone().requires_grad_(true);
    auto wide = wide_data.clone().requires_grad_(true);
    auto x = x_data.clone().requires_grad_(true);
    auto w = torch::linspace(0.5, 1.5, 48).requires_grad_(true);
    auto out = model::fused::causal_attention(qkv, shape, rope);
    auto wide_out = model::fused::causal_attention(wide, wide_shape, wide_rope);
    auto y = model::fused::swiglu(model::fused::rms_norm(x, w, 1e-5));
    (out.pow(2).sum() + wide_out.pow(2).sum() + y.pow(2).sum()).backward();
    return std::vector<torch::Tensor>{out, qkv.grad(), wide_out, wide.grad(), y, x.grad(), w.grad()};
  };
  ThreadCountGuard guard;
  const auto one = run(1);
  const auto three = run(3);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(torch::equal(one[i], three[i])) << "result " << i;
}

TEST(FusedKernels, apply_to_cpu_float32_only) {
  EXPECT_TRUE(model::fused::applies_to(torch::zeros({2})));
  EXPECT_FALSE(model::fused::applies_to(torch::zeros({2}, torch::kFloat64)));
  EXPECT_FALSE(model::fused::applies_to(torch::Tensor()));
  // The dispatcher falls back to the reference where the kernels do not apply.
  auto x = torch::randn({3, 4}, torch::kFloat64);
  EXPECT_TRUE(torch::equal(model::swiglu(x, model::Kernels::Fused), model::reference::swiglu(x)));
}

}  // namespace

// ---------------------------------------------------------------- blocked attention

namespace {

// The blocked attention against the reference in double precision: output and the
// gradient of qkv, for blocks that do and do not divide the context.
void check_blocked(const AttentionCase& c, int64_t block, torch::Dtype dtype, double tolerance) {
  const model::AttentionShape shape{c.heads, c.kv_heads, c.head_dim};
  const auto rope = model::make_rope_table(c.seq, c.head_dim, 10000.0, torch::TensorOptions());
  const int64_t width = (c.heads + 2 * c.kv_heads) * c.head_dim;
  const auto input = randn({c.batch, c.seq, width}, c.stddev);
  auto qkv = input.to(dtype).detach().clone().requires_grad_(true);
  auto out = model::blocked::causal_attention(qkv, shape, rope, block);
  const auto dout = randn(out.sizes().vec());
  out.backward(dout.to(dtype));
  auto qkv_d = input.to(torch::kFloat64).requires_grad_(true);
  auto out_d = model::reference::causal_attention(qkv_d, shape, rope);
  out_d.backward(dout.to(torch::kFloat64));
  const std::string what = describe(c) + " block " + std::to_string(block);
  EXPECT_LE(scaled_error(out, out_d), tolerance) << what << " out";
  EXPECT_LE(scaled_error(qkv.grad(), qkv_d.grad()), tolerance) << what << " d qkv";
}

}  // namespace

TEST(BlockedAttention, matches_reference_in_double_precision) {
  torch::manual_seed(11);
  for (const auto& c : std::vector<AttentionCase>{{2, 11, 4, 2, 8}, {1, 33, 6, 2, 16}, {3, 7, 2, 2, 4, 3.0}})
    for (const int64_t block : {1, 4, 7, 64}) check_blocked(c, block, torch::kFloat64, 1e-12);
}

TEST(BlockedAttention, matches_reference_in_float32) {
  torch::manual_seed(12);
  check_blocked({2, 100, 4, 1, 32}, 16, torch::kFloat32, 2e-5);
  check_blocked({1, 600, 4, 2, 16}, model::blocked::kAttentionBlock, torch::kFloat32, 2e-5);
  // bfloat16 products with a float32 softmax and accumulators, as under autocast on CUDA:
  // within bfloat16's resolution (2^-8) of the double-precision reference.
  check_blocked({1, 40, 2, 1, 16}, 8, torch::kBFloat16, 2e-2);
}

TEST(BlockedAttention, is_causal) {
  torch::manual_seed(13);
  const model::AttentionShape shape{2, 1, 8};
  const auto rope = model::make_rope_table(20, 8, 10000.0, torch::TensorOptions());
  auto qkv = randn({1, 20, 32});
  const auto before = model::blocked::causal_attention(qkv, shape, rope, 6);
  qkv.narrow(1, 13, 7).add_(1.0);  // change the future of position 12
  const auto after = model::blocked::causal_attention(qkv, shape, rope, 6);
  EXPECT_TRUE(torch::equal(before.narrow(1, 0, 13), after.narrow(1, 0, 13)));
  EXPECT_FALSE(torch::equal(before.narrow(1, 13, 7), after.narrow(1, 13, 7)));
}

TEST(BlockedAttention, is_taken_above_the_block_length) {
  torch::manual_seed(14);
  const model::AttentionShape shape{2, 2, 16};
  const int64_t seq = model::blocked::kAttentionBlock + 3;
  const auto rope = model::make_rope_table(seq, 16, 10000.0, torch::TensorOptions());
  const auto qkv = randn({1, seq, 96});
  const auto chosen = model::causal_attention(qkv, shape, rope, model::Kernels::Reference);
  EXPECT_TRUE(torch::equal(chosen, model::blocked::causal_attention(qkv, shape, rope)));
}
