#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cmath>

#include "hnas/core/error.hpp"
#include "hnas/train/metrics.hpp"
#include "hnas/train/schedule.hpp"
#include "hnas/train/throughput.hpp"
#include "hnas/train/trainer.hpp"
#include "support/tiny_training.hpp"

namespace {

using namespace hnas;
using train::LrSchedule;
using train::ScheduleKind;

TEST(Schedule, cosine_warms_up_then_decays_to_min) {
  LrSchedule s{ScheduleKind::Cosine, /*peak_lr=*/1.0, /*min_lr=*/0.1, /*warmup_steps=*/10, /*total_steps=*/110, 0.2};
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.at(9), 1.0);
  EXPECT_DOUBLE_EQ(s.at(10), 1.0);
  EXPECT_NEAR(s.at(109), 0.1, 1e-12);
  for (int64_t step = 11; step < 110; ++step) EXPECT_LE(s.at(step), s.at(step - 1)) << step;
  EXPECT_NEAR(s.at(60), 0.55, 0.01);  // halfway through the decay
}

TEST(Schedule, wsd_is_flat_then_decays_linearly) {
  LrSchedule s{ScheduleKind::Wsd, 1.0, 0.0, 5, 100, 0.2};
  EXPECT_DOUBLE_EQ(s.at(2), 0.6);
  EXPECT_DOUBLE_EQ(s.at(50), 1.0);
  EXPECT_DOUBLE_EQ(s.at(79), 1.0);
  EXPECT_NEAR(s.at(89), 0.5, 1e-12);
  EXPECT_NEAR(s.at(99), 0.0, 1e-12);
  LrSchedule c{ScheduleKind::Constant, 0.3, 0.0, 0, 10, 0.2};
  EXPECT_DOUBLE_EQ(c.at(9), 0.3);
  EXPECT_THROW(train::parse_schedule("linear", "train.schedule"), hnas::ConfigError);
}

TEST(Metrics, macro_accuracy_counts_predicted_only_classes) {
  // mad-spec worked example: targets [8 8 8 9], predictions [8 8 8 3] -> micro 0.75, macro 1/3.
  auto logits = torch::full({5, 16}, -10.0);
  const int64_t predicted[] = {8, 8, 8, 3, 5};
  for (int i = 0; i < 5; ++i) logits[i][predicted[i]] = 10.0;
  auto targets = torch::tensor({8, 8, 8, 9, static_cast<int>(train::kIgnoreIndex)}, torch::kLong);
  const auto m = train::batch_metrics(logits, targets);
  EXPECT_EQ(m.scored_tokens, 4);
  EXPECT_EQ(m.correct_tokens, 3);
  EXPECT_NEAR(m.macro_accuracy, 1.0 / 3.0, 1e-12);
  train::MetricsAccumulator acc;
  acc.add(m, 2);
  acc.add(train::batch_metrics(logits.narrow(0, 0, 3), targets.narrow(0, 0, 3)), 2);
  EXPECT_NEAR(acc.macro_accuracy(), (1.0 / 3.0 + 1.0) / 2.0, 1e-12);
  EXPECT_NEAR(acc.micro_accuracy(), 6.0 / 7.0, 1e-12);
}

using hnas::testing::PatternBatches;
using hnas::testing::tiny_model;

train::TrainerOptions tiny_options(int64_t steps) {
  train::TrainerOptions t;
  t.schedule.peak_lr = 3e-3;
  t.schedule.total_steps = steps;
  t.schedule.warmup_steps = 5;
  return t;
}

TEST(Trainer, loss_decreases_on_a_learnable_pattern) {
  auto model = tiny_model();
  PatternBatches data;
  const auto result = train::train_model(model, data, nullptr, tiny_options(80));
  ASSERT_EQ(result.status, train::RunStatus::Completed);
  ASSERT_EQ(result.curve.size(), 80u);
  EXPECT_NEAR(result.curve.front().loss, std::log(13.0), 0.3);
  EXPECT_LT(result.curve.back().loss, 0.5 * result.curve.front().loss);
  EXPECT_EQ(result.tokens, 80 * 8 * 16);
}

TEST(Trainer, accumulation_gives_the_same_updates_as_one_batch) {
  auto whole = tiny_model(3), split = tiny_model(3);
  PatternBatches a, b;
  auto t = tiny_options(6);
  const auto r1 = train::train_model(whole, a, nullptr, t);
  t.micro_batches = 4;
  const auto r2 = train::train_model(split, b, nullptr, t);
  for (size_t i = 0; i < r1.curve.size(); ++i) EXPECT_NEAR(r1.curve[i].loss, r2.curve[i].loss, 1e-4) << "step " << i;
  auto p1 = whole->parameters(), p2 = split->parameters();
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(torch::allclose(p1[i], p2[i], 1e-3, 1e-5)) << i;
}

TEST(Trainer, nan_loss_is_reported_as_diverged_not_thrown) {
  auto model = tiny_model();
  {
    torch::NoGradGuard no_grad;
    model->parameters()[0][0][0] = std::numeric_limits<float>::quiet_NaN();
  }
  PatternBatches data;
  train::TrainResult result;
  ASSERT_NO_THROW(result = train::train_model(model, data, nullptr, tiny_options(10)));
  EXPECT_EQ(result.status, train::RunStatus::Diverged);
  EXPECT_EQ(result.steps, 0);
}

TEST(Trainer, stops_early_at_target_accuracy_and_keeps_lowest_perplexity) {
  auto model = tiny_model();
  PatternBatches data;
  int calls = 0;
  train::Evaluator fake = [&](model::HybridModel&) {
    ++calls;
    train::EvalMetrics m;
    m.accuracy = calls >= 3 ? 1.0 : 0.5;
    m.perplexity = calls == 2 ? 1.5 : 2.0;
    m.loss = 1.0;
    return m;
  };
  auto t = tiny_options(100);
  t.eval_every = 5;
  t.target_accuracy = 0.999;
  const auto result = train::train_model(model, data, fake, t);
  EXPECT_EQ(result.status, train::RunStatus::ReachedTarget);
  EXPECT_EQ(result.steps, 15);
  EXPECT_EQ(result.best.step, 10);  // the second evaluation had the lowest perplexity
}

TEST(Trainer, wall_clock_budget_ends_the_run_as_timed_out) {
  auto model = tiny_model();
  PatternBatches data;
  auto t = tiny_options(1000000);
  t.max_seconds = 0.3;
  const auto result = train::train_model(model, data, nullptr, t);
  EXPECT_EQ(result.status, train::RunStatus::TimedOut);
  EXPECT_GT(result.steps, 0);
  EXPECT_LT(result.steps, 1000000);
}

TEST(Trainer, norms_and_biases_are_not_decayed) {
  // With zero gradients (lr applies only through decay), matrices shrink and gains do not.
  auto model = tiny_model();
  class Nothing : public train::BatchSource {
   public:
    train::Batch next() override {
      return {torch::zeros({1, 4}, torch::kLong), torch::full({1, 4}, train::kIgnoreIndex, torch::kLong)};
    }
  } data;
  auto t = tiny_options(3);
  t.weight_decay = 0.5;
  t.schedule.warmup_steps = 0;
  t.schedule.kind = train::ScheduleKind::Constant;
  t.schedule.peak_lr = 0.1;
  auto before = model->named_parameters().values();
  std::vector<torch::Tensor> copies;
  for (auto& p : before) copies.push_back(p.detach().clone());
  train::train_model(model, data, nullptr, t);
  auto after = model->named_parameters();
  for (size_t i = 0; i < after.size(); ++i) {
    const bool exempt = after[i].value().dim() < 2;
    EXPECT_EQ(torch::equal(after[i].value(), copies[i]), exempt) << after[i].key();
  }
}

}  // namespace

TEST(PeakFlops, known_accelerators_by_cuda_name_and_zero_for_others) {
  using hnas::train::known_bf16_peak_tflops;
  EXPECT_EQ(known_bf16_peak_tflops("NVIDIA H200"), 989);
  EXPECT_EQ(known_bf16_peak_tflops("NVIDIA H100 80GB HBM3"), 989);
  EXPECT_EQ(known_bf16_peak_tflops("NVIDIA H100 PCIe"), 756);
  EXPECT_EQ(known_bf16_peak_tflops("NVIDIA H100 NVL"), 835);
  EXPECT_EQ(known_bf16_peak_tflops("NVIDIA A100-SXM4-80GB"), 312);
  EXPECT_EQ(known_bf16_peak_tflops("NVIDIA A10"), 125);
  EXPECT_EQ(known_bf16_peak_tflops("NVIDIA L40S"), 362);
  EXPECT_EQ(known_bf16_peak_tflops("Tesla V100-SXM2-32GB"), 0);  // no bf16: measured instead
  EXPECT_EQ(known_bf16_peak_tflops(""), 0);
}
