// SPDX-License-Identifier: Apache-2.0
// The fused summed cross-entropy against LibTorch's cross_entropy (ignore_index, sum):
// values and gradients over several shapes, ignored rows, thread counts and dispatch.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "hnas/core/error.hpp"
#include "hnas/train/fused_cross_entropy.hpp"
#include "hnas/train/trainer.hpp"

namespace {

using hnas::train::fused_summed_cross_entropy;

constexpr int64_t kIgnore = -100;

torch::Tensor reference_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  return torch::nn::functional::cross_entropy(
      logits, targets, torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnore).reduction(torch::kSum));
}

/// Targets in [0, V) with about a quarter of them ignored (and the first row always).
torch::Tensor make_targets(int64_t rows, int64_t vocab) {
  auto t = torch::randint(vocab, {rows}, torch::kLong);
  auto ignored = torch::rand({rows}) < 0.25;
  t.masked_fill_(ignored, kIgnore);
  t[0] = kIgnore;
  return t;
}

void check(int64_t rows, int64_t vocab, double scale) {
  const auto logits_data = torch::randn({rows, vocab}) * scale;
  const auto targets = make_targets(rows, vocab);
  const auto upstream = torch::tensor(0.37f);

  auto logits = logits_data.clone().requires_grad_(true);
  auto loss = fused_summed_cross_entropy(logits, targets, kIgnore);
  EXPECT_EQ(loss.dim(), 0);
  EXPECT_EQ(loss.scalar_type(), torch::kFloat);
  (loss * upstream).backward();

  // Double precision as the truth; LibTorch's float32 result sets the scale of the error.
  auto logits_d = logits_data.to(torch::kFloat64).requires_grad_(true);
  auto loss_d = reference_loss(logits_d, targets);
  (loss_d * upstream.to(torch::kFloat64)).backward();

  const std::string what = "rows=" + std::to_string(rows) + " vocab=" + std::to_string(vocab);
  const double loss_tol = 1e-5 * std::max(1.0, std::abs(loss_d.item<double>())) + 1e-6 * rows;
  EXPECT_NEAR(loss.item<double>(), loss_d.item<double>(), loss_tol) << what;
  const auto grad_error = (logits.grad().to(torch::kFloat64) - logits_d.grad()).abs().max().item<double>();
  EXPECT_LT(grad_error, 1e-6) << what;
  // Ignored rows get exactly zero gradient.
  const auto ignored = targets == kIgnore;
  EXPECT_EQ(logits.grad().index({ignored}).abs().sum().item<float>(), 0.0f) << what;
}

TEST(FusedCrossEntropy, matches_torch_on_many_shapes) {
  torch::manual_seed(1);
  // Vocabularies below, at and off the vector width, and the LM-head scale.
  for (auto [rows, vocab] :
       std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 5}, {7, 16}, {33, 17}, {64, 100}, {130, 4096}, {9, 4099}}) {
    check(rows, vocab, 1.0);
  }
  check(50, 300, 30.0);  // large logits: the max shift keeps exp finite
}

TEST(FusedCrossEntropy, all_rows_ignored_gives_zero) {
  auto logits = torch::randn({4, 10}).requires_grad_(true);
  auto loss = fused_summed_cross_entropy(logits, torch::full({4}, kIgnore, torch::kLong), kIgnore);
  EXPECT_EQ(loss.item<float>(), 0.0f);
  loss.backward();
  EXPECT_EQ(logits.grad().abs().sum().item<float>(), 0.0f);
}

TEST(FusedCrossEntropy, does_not_depend_on_the_thread_count) {
  torch::manual_seed(2);
  const auto logits_data = torch::randn({257, 333});
  const auto targets = make_targets(257, 333);
  auto run = [&](int threads) {
    at::set_num_threads(threads);
    auto logits = logits_data.clone().requires_grad_(true);
    auto loss = fused_summed_cross_entropy(logits, targets, kIgnore);
    loss.backward();
    return std::make_pair(loss, logits.grad());
  };
  const int saved = at::get_num_threads();
  const auto one = run(1);
  const auto three = run(3);
  at::set_num_threads(saved);
  EXPECT_TRUE(torch::equal(one.first, three.first));
  EXPECT_TRUE(torch::equal(one.second, three.second));
}

TEST(FusedCrossEntropy, summed_cross_entropy_dispatches_and_falls_back) {
  torch::manual_seed(3);
  const auto logits = torch::randn({2, 5, 11});
  const auto targets = make_targets(10, 11).reshape({2, 5});
  const auto fused = hnas::train::summed_cross_entropy(logits, targets);
  const auto reference = reference_loss(logits.reshape({10, 11}), targets.reshape({10}));
  EXPECT_NEAR(fused.item<double>(), reference.item<double>(), 1e-4);
  // float64 takes the LibTorch path.
  const auto d = hnas::train::summed_cross_entropy(logits.to(torch::kFloat64), targets);
  EXPECT_EQ(d.scalar_type(), torch::kFloat64);
  EXPECT_NEAR(d.item<double>(), reference.item<double>(), 1e-4);
  // Without autograd only the loss is computed.
  torch::NoGradGuard no_grad;
  EXPECT_NEAR(fused_summed_cross_entropy(logits.reshape({10, 11}), targets.reshape({10}), kIgnore).item<double>(),
              reference.item<double>(), 1e-4);
}

TEST(FusedCrossEntropy, rejects_bad_inputs) {
  EXPECT_THROW(fused_summed_cross_entropy(torch::zeros({2, 3}), torch::tensor({0, 3}), kIgnore), hnas::InternalError);
  EXPECT_THROW(fused_summed_cross_entropy(torch::zeros({2, 3}), torch::tensor({0}), kIgnore), hnas::InternalError);
  EXPECT_THROW(fused_summed_cross_entropy(torch::zeros({2, 3}, torch::kFloat64), torch::tensor({0, 1}), kIgnore),
               hnas::InternalError);
}

}  // namespace
