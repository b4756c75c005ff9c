// SPDX-License-Identifier: Apache-2.0
// FusedAdamW against torch::optim::AdamW (two weight-decay groups) and clip_grad_norm_,
// step by step on the same gradients.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "hnas/core/error.hpp"
#include "hnas/train/fused_adamw.hpp"

namespace {

using hnas::train::FusedAdamW;
using hnas::train::FusedAdamWGroup;
using hnas::train::FusedAdamWOptions;

// Odd sizes exercise the vector tails and the 64-byte padding between parameters; the big
// one spans several work blocks.
std::vector<torch::Tensor> make_parameters(uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<torch::Tensor> p = {torch::randn({37, 19}), torch::randn({300, 257}), torch::randn({5, 3, 7}),
                                  torch::randn({19}), torch::randn({1})};
  for (auto& t : p) t.requires_grad_();
  return p;
}

std::vector<torch::Tensor> clones(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach().clone().requires_grad_());
  return out;
}

// Matrices decay, vectors do not: the trainer's grouping.
torch::optim::AdamW make_torch_adamw(const std::vector<torch::Tensor>& params, double lr, double decay) {
  std::vector<torch::Tensor> with_decay, without;
  for (const auto& p : params) (p.dim() >= 2 ? with_decay : without).push_back(p);
  auto options = torch::optim::AdamWOptions(lr).betas({0.9, 0.95}).eps(1e-8).weight_decay(decay);
  auto exempt = options;
  exempt.weight_decay(0.0);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(with_decay, std::make_unique<torch::optim::AdamWOptions>(options));
  groups.emplace_back(without, std::make_unique<torch::optim::AdamWOptions>(exempt));
  return torch::optim::AdamW(std::move(groups), options);
}

FusedAdamW make_fused(const std::vector<torch::Tensor>& params, double lr, double decay) {
  FusedAdamWGroup with_decay{{}, decay}, without{{}, 0.0};
  for (const auto& p : params) (p.dim() >= 2 ? with_decay : without).parameters.push_back(p);
  FusedAdamWOptions options;
  options.lr = lr;
  options.beta2 = 0.95;
  return FusedAdamW({with_decay, without}, options);
}

void set_gradients(std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads) {
  for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = grads[i].clone();
}

std::vector<torch::Tensor> random_gradients(const std::vector<torch::Tensor>& params, double scale) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) grads.push_back(torch::randn(p.sizes()) * scale);
  return grads;
}

void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, const std::string& what) {
  EXPECT_TRUE(torch::allclose(actual, expected, /*rtol=*/1e-5, /*atol=*/1e-6))
      << what << ": max difference " << (actual - expected).abs().max().item<double>();
}

TEST(FusedAdamW, matches_torch_adamw_with_two_decay_groups) {
  auto reference = make_parameters(1);
  auto fused_params = clones(reference);
  auto torch_adamw = make_torch_adamw(reference, /*lr=*/1e-2, /*decay=*/0.1);
  auto fused = make_fused(fused_params, 1e-2, 0.1);
  for (int step = 0; step < 6; ++step) {
    const auto grads = random_gradients(reference, 1.0);
    set_gradients(reference, grads);
    set_gradients(fused_params, grads);
    torch_adamw.step();
    fused.step();
    for (size_t i = 0; i < reference.size(); ++i)
      expect_close(fused_params[i], reference[i], "step " + std::to_string(step) + " parameter " + std::to_string(i));
  }
  // The moments agree too (what a checkpoint would store).
  auto& state = torch_adamw.state();
  for (size_t i = 0; i < reference.size(); ++i) {
    auto& s = static_cast<torch::optim::AdamWParamState&>(
        *state.at(c10::guts::to_string(reference[i].unsafeGetTensorImpl())));
    expect_close(fused.exp_avg(i), s.exp_avg(), "exp_avg " + std::to_string(i));
    expect_close(fused.exp_avg_sq(i), s.exp_avg_sq(), "exp_avg_sq " + std::to_string(i));
    EXPECT_EQ(fused.step_count(i), s.step());
  }
}

TEST(FusedAdamW, clip_and_step_matches_clip_grad_norm_then_step) {
  auto reference = make_parameters(2);
  auto fused_params = clones(reference);
  auto torch_adamw = make_torch_adamw(reference, 1e-3, 0.1);
  auto fused = make_fused(fused_params, 1e-3, 0.1);
  for (int step = 0; step < 4; ++step) {
    // Large gradients on even steps (clipped), small ones on odd steps (left alone).
    const auto grads = random_gradients(reference, step % 2 == 0 ? 10.0 : 1e-4);
    set_gradients(reference, grads);
    set_gradients(fused_params, grads);
    const double expected_norm = torch::nn::utils::clip_grad_norm_(reference, /*max_norm=*/1.0);
    torch_adamw.step();
    const double norm = fused.clip_and_step(1.0);
    EXPECT_NEAR(norm, expected_norm, 1e-5 * expected_norm) << "step " << step;
    for (size_t i = 0; i < reference.size(); ++i)
      expect_close(fused_params[i], reference[i], "step " + std::to_string(step) + " parameter " + std::to_string(i));
    // The gradients themselves stay unclipped.
    EXPECT_TRUE(torch::equal(fused_params[0].grad(), grads[0]));
  }
}

TEST(FusedAdamW, skips_parameters_without_gradient) {
  auto reference = make_parameters(3);
  auto fused_params = clones(reference);
  auto torch_adamw = make_torch_adamw(reference, 1e-2, 0.1);
  auto fused = make_fused(fused_params, 1e-2, 0.1);
  const auto before = fused_params[1].detach().clone();
  for (int step = 0; step < 3; ++step) {
    auto grads = random_gradients(reference, 1.0);
    set_gradients(reference, grads);
    set_gradients(fused_params, grads);
    if (step == 0) {
      reference[1].mutable_grad().reset();
      fused_params[1].mutable_grad().reset();
    }
    torch_adamw.step();
    fused.step();
    if (step == 0) {
      EXPECT_TRUE(torch::equal(fused_params[1], before));
    }
    for (size_t i = 0; i < reference.size(); ++i)
      expect_close(fused_params[i], reference[i], "step " + std::to_string(step) + " parameter " + std::to_string(i));
  }
  EXPECT_EQ(fused.step_count(1), 2);
  EXPECT_EQ(fused.step_count(0), 3);
}

TEST(FusedAdamW, grad_norm_does_not_depend_on_thread_count) {
  auto params = make_parameters(4);
  set_gradients(params, random_gradients(params, 1.0));
  auto fused = make_fused(params, 1e-3, 0.1);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const double one = fused.grad_norm();
  at::set_num_threads(2);
  const double two = fused.grad_norm();
  at::set_num_threads(threads);
  EXPECT_EQ(one, two);
  double expected = 0;
  for (const auto& p : params) expected += p.grad().to(torch::kFloat64).pow(2).sum().item<double>();
  EXPECT_NEAR(one, std::sqrt(expected), 1e-6 * std::sqrt(expected));
  // The square, which ZeRO-1 adds up over the ranks' shards, is the same sum.
  EXPECT_NEAR(fused.grad_squared_norm(), expected, 1e-6 * expected);
  EXPECT_EQ(std::sqrt(fused.grad_squared_norm()), one);
}

TEST(FusedAdamW, zero_grad_drops_gradients) {
  auto params = make_parameters(5);
  set_gradients(params, random_gradients(params, 1.0));
  auto fused = make_fused(params, 1e-3, 0.0);
  fused.zero_grad();
  for (const auto& p : params) EXPECT_FALSE(p.grad().defined());
  EXPECT_EQ(fused.grad_norm(), 0.0);
}

TEST(FusedAdamW, rejects_unsupported_parameters) {
  auto p = torch::randn({4, 4}).requires_grad_();
  EXPECT_THROW(FusedAdamW({{{p, p}, 0.0}}, {}), hnas::InternalError);
  auto doubles = torch::randn({4}).to(torch::kFloat64).requires_grad_();
  EXPECT_THROW(FusedAdamW({{{doubles}, 0.0}}, {}), hnas::InternalError);
  auto strided = torch::randn({4, 4}).t();
  EXPECT_THROW(FusedAdamW({{{strided}, 0.0}}, {}), hnas::InternalError);
}

}  // namespace
