// SPDX-License-Identifier: Apache-2.0
#include "hnas/train/metrics.hpp"

#include <torch/torch.h>

#include <cmath>

#include "hnas/dist/gradient_reducer.hpp"

namespace hnas::train {

BatchMetrics batch_metrics(const at::Tensor& logits, const at::Tensor& targets) {
  torch::NoGradGuard no_grad;
  BatchMetrics m;
  const int64_t vocab = logits.size(-1);
  auto flat_logits = logits.reshape({-1, vocab}).to(torch::kFloat32);
  auto flat_targets = targets.reshape({-1});
  auto scored = flat_targets != kIgnoreIndex;
  m.scored_tokens = scored.sum().item<int64_t>();
  if (m.scored_tokens == 0) return m;
  auto logits_s = flat_logits.index({scored});
  auto targets_s = flat_targets.index({scored});
  m.loss_sum = torch::nn::functional::cross_entropy(
                   logits_s, targets_s, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                   .item<double>();
  auto predictions = logits_s.argmax(-1);
  auto hits = predictions == targets_s;
  m.correct_tokens = hits.sum().item<int64_t>();
  // Macro: recall per class, averaged over classes seen as a target or a prediction.
  auto target_counts = torch::bincount(targets_s, {}, vocab);
  auto prediction_counts = torch::bincount(predictions, {}, vocab);
  auto hit_counts = torch::bincount(targets_s.index({hits}), {}, vocab);
  auto active = (target_counts > 0) | (prediction_counts > 0);
  auto recall = hit_counts.to(torch::kFloat64) / target_counts.clamp_min(1).to(torch::kFloat64);
  m.macro_accuracy = recall.index({active}).mean().item<double>();
  m.perplexity = std::exp(m.loss_sum / static_cast<double>(m.scored_tokens));
  return m;
}

void MetricsAccumulator::add(const BatchMetrics& batch, int64_t batch_rows) {
  loss_sum_ += batch.loss_sum;
  scored_tokens_ += batch.scored_tokens;
  correct_tokens_ += batch.correct_tokens;
  rows_ += batch_rows;
  weighted_macro_ += batch.macro_accuracy * static_cast<double>(batch_rows);
  weighted_perplexity_ += batch.perplexity * static_cast<double>(batch_rows);
}

void MetricsAccumulator::sum_over(const dist::GradientReducer* team) {
  if (team == nullptr || team->size() == 1) return;
  // Counts travel as doubles: exact below 2^53, far beyond any evaluation set.
  double sums[6] = {loss_sum_,
                    static_cast<double>(scored_tokens_),
                    static_cast<double>(correct_tokens_),
                    static_cast<double>(rows_),
                    weighted_macro_,
                    weighted_perplexity_};
  team->sum(sums, 6);
  loss_sum_ = sums[0];
  scored_tokens_ = static_cast<int64_t>(sums[1]);
  correct_tokens_ = static_cast<int64_t>(sums[2]);
  rows_ = static_cast<int64_t>(sums[3]);
  weighted_macro_ = sums[4];
  weighted_perplexity_ = sums[5];
}

double MetricsAccumulator::loss() const {
  return scored_tokens_ ? loss_sum_ / static_cast<double>(scored_tokens_) : NAN;
}
double MetricsAccumulator::micro_accuracy() const {
  return scored_tokens_ ? static_cast<double>(correct_tokens_) / static_cast<double>(scored_tokens_) : 0.0;
}
double MetricsAccumulator::macro_accuracy() const { return rows_ ? weighted_macro_ / static_cast<double>(rows_) : 0.0; }
double MetricsAccumulator::mean_batch_perplexity() const {
  return rows_ ? weighted_perplexity_ / static_cast<double>(rows_) : NAN;
}

}  // namespace hnas::train
