// SPDX-License-Identifier: Apache-2.0
// Token-classification metrics with MAD's conventions: targets equal to kIgnoreIndex are
// not scored; accuracy is reported both micro (fraction of scored tokens right) and macro
// (mean per-class recall over the classes present as target or prediction, per batch,
// as torchmetrics' MulticlassAccuracy that the MAD benchmark uses).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "hnas/data/mad.hpp"

namespace hnas::dist {
class GradientReducer;
}

namespace hnas::train {

/// Targets equal to this are not scored (the data module's convention).
constexpr int64_t kIgnoreIndex = data::kIgnoreIndex;

/// Sums over one batch, to be merged across batches (and later across ranks).
struct BatchMetrics {
  double loss_sum = 0;  ///< summed cross-entropy over scored tokens
  int64_t scored_tokens = 0;
  int64_t correct_tokens = 0;
  double macro_accuracy = 0;  ///< this batch's macro accuracy (0 if nothing scored)
  double perplexity = 0;      ///< exp(mean loss) of this batch
};

/// Metrics of logits [N, V] against targets [N] (kIgnoreIndex = unscored). Rank-local.
BatchMetrics batch_metrics(const at::Tensor& logits, const at::Tensor& targets);

/// Running aggregate over batches: token-weighted loss, micro accuracy, and the MAD
/// reductions (per-batch macro accuracy and perplexity averaged weighted by batch rows).
class MetricsAccumulator {
 public:
  void add(const BatchMetrics& batch, int64_t batch_rows);
  double loss() const;  ///< mean cross-entropy per scored token
  double micro_accuracy() const;
  double macro_accuracy() const;  ///< MAD's test accuracy
  double mean_batch_perplexity() const;
  int64_t scored_tokens() const { return scored_tokens_; }
  /// Replaces these sums by their totals over `team`'s ranks, each of which accumulated
  /// its own share of the batches. Collective over the team; a no-op without one.
  void sum_over(const dist::GradientReducer* team);

 private:
  double loss_sum_ = 0;
  int64_t scored_tokens_ = 0, correct_tokens_ = 0, rows_ = 0;
  double weighted_macro_ = 0, weighted_perplexity_ = 0;
};

}  // namespace hnas::train
