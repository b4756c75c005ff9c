// SPDX-License-Identifier: Apache-2.0
// Optimizer-state sharding, ZeRO stage 1 (internal to pretrain/): each rank of the team
// keeps the AdamW moments of only its part of every gradient bucket (1/N of the state),
// receives only that part of the summed gradient (a reduce-scatter instead of an
// all-reduce, overlapped with the backward pass like the all-reduce), updates that part of
// the parameters, and the updated parts are all-gathered into every rank's model. The
// arithmetic per element is the replicated optimizer's; only the global gradient norm is
// added up in another order (the squared norms of the parts, summed over the team), so
// the loss curve equals the unsharded run's within float rounding.
//
// Memory per rank for P parameters on N ranks: the parameters (P, the buckets the
// all-gather fills), the gradients (P while backward accumulates, dropped after the
// reduce-scatter), the gradient buckets (P), and the AdamW moments and the reduced
// gradient of this rank's part (3P/N), against 2P of moments unsharded.
//
// Collective over the reducer's team, like GradientBuckets.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gradient_buckets.hpp"
#include "hnas/dist/communicator.hpp"
#include "optimizer.hpp"

namespace hnas::pretrain {

class ShardedOptimizer final : public ModelOptimizer {
 public:
  /// `team` is the reducer's team (host traffic: the checkpoint's gathers). Both must
  /// outlive it, as must the parameters, which become views into its parameter buckets
  /// (set_data: the model's modules see the same tensors).
  ShardedOptimizer(dist::GradientReducer& reducer, const dist::Communicator& team,
                   const std::vector<std::pair<std::string, torch::Tensor>>& named, const PretrainOptions& o);

  /// The step's gradient reduction: arm() before the last backward to overlap it, then
  /// finish() before clip_and_step().
  GradientBuckets& buckets() { return *buckets_; }

  void set_lr(double lr) override { inner_->set_lr(lr); }
  void zero_grad() override;
  double clip_and_step() override;
  const std::vector<std::string>& names() const override { return names_; }
  const std::vector<torch::Tensor>& parameters() const override { return parameters_; }
  void load_moments(size_t i, const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq, int64_t steps) override;
  void collect_moments(std::vector<NamedTensor>& exp_avg, std::vector<NamedTensor>& exp_avg_sq) override;

  /// The fraction of the model's optimizer state this rank holds.
  double state_fraction() const;

 private:
  // The part of parameter `parameter` this rank owns: elements [begin, begin + length) of
  // bucket `bucket`, i.e. [begin - offset, ...) of the parameter.
  struct Segment {
    size_t parameter;
    size_t bucket;
    int64_t begin;
    int64_t length;
  };
  int64_t part_numel(size_t bucket) const;
  const GradientBuckets::Placement& where(size_t parameter) const;  // by our (checkpoint) index

  dist::GradientReducer& reducer_;
  const dist::Communicator& team_;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> parameters_;  // views into bucket_parameters_
  std::vector<size_t> model_position_;     // per parameter: its index in the model's order
  std::unique_ptr<GradientBuckets> buckets_;
  std::vector<torch::Tensor> bucket_parameters_;  // the parameters, bucket by bucket (all-gathered)
  std::vector<Segment> segments_;                 // in the inner optimizer's order
  std::vector<std::vector<size_t>> segments_of_;  // per parameter
  std::vector<int64_t> steps_;                    // per parameter, the same on every rank
  std::unique_ptr<Optimizer> inner_;              // over this rank's segments
};

}  // namespace hnas::pretrain
