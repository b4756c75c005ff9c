// SPDX-License-Identifier: Apache-2.0
#include "sharded_optimizer.hpp"

#include <algorithm>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"

namespace hnas::pretrain {

ShardedOptimizer::ShardedOptimizer(dist::GradientReducer& reducer, const dist::Communicator& team,
                                   const std::vector<std::pair<std::string, torch::Tensor>>& named,
                                   const PretrainOptions& o)
    : reducer_(reducer), team_(team) {
  HNAS_ASSERT(reducer.size() == team.size(), "the reducer's team and the host team differ");
  // The checkpoint's order, as the replicated optimizer's: matrices first. The buckets
  // follow the model's order, which backward walks in reverse.
  std::vector<torch::Tensor> in_model_order;
  for (const auto& [name, p] : named) in_model_order.push_back(p);
  for (const bool decay : {true, false})
    for (size_t m = 0; m < named.size(); ++m)
      if ((named[m].second.dim() >= 2) == decay) {
        names_.push_back(named[m].first);
        parameters_.push_back(named[m].second);
        model_position_.push_back(m);
      }
  buckets_ = std::make_unique<GradientBuckets>(reducer, in_model_order, static_cast<size_t>(o.bucket_mb * 1e6),
                                               BucketReduction::ReduceScatter);
  torch::NoGradGuard no_grad;
  for (size_t b = 0; b < buckets_->num_buckets(); ++b)
    bucket_parameters_.push_back(torch::zeros({buckets_->bucket_numel(b)}, parameters_.front().options()));
  // The parameters become views into their buckets: the all-gather updates the model in
  // place, and the model's weights are not held twice.
  for (size_t k = 0; k < parameters_.size(); ++k) {
    auto& p = parameters_[k];
    auto slot = bucket_parameters_[where(k).bucket].narrow(0, where(k).offset, p.numel());
    slot.copy_(p.reshape({-1}));
    p.set_data(slot.view(p.sizes()));
  }

  // This rank's part of every bucket, cut at the parameters' boundaries.
  const int64_t rank = team.rank();
  segments_of_.resize(parameters_.size());
  std::vector<Segment> decayed, kept;
  for (size_t k = 0; k < parameters_.size(); ++k) {
    const auto& at = where(k);
    const int64_t part = part_numel(at.bucket);
    const int64_t begin = std::max(at.offset, rank * part);
    const int64_t end = std::min(at.offset + parameters_[k].numel(), (rank + 1) * part);
    if (begin < end) (parameters_[k].dim() >= 2 ? decayed : kept).push_back({k, at.bucket, begin, end - begin});
  }
  segments_ = decayed;
  segments_.insert(segments_.end(), kept.begin(), kept.end());
  std::vector<OptimizerEntry> entries;
  for (size_t s = 0; s < segments_.size(); ++s) {
    const auto& seg = segments_[s];
    segments_of_[seg.parameter].push_back(s);
    auto slice = bucket_parameters_[seg.bucket].narrow(0, seg.begin, seg.length);
    // The update reads this rank's part of the summed gradient where the reduce-scatter put it.
    slice.mutable_grad() = buckets_->shard(seg.bucket).narrow(0, seg.begin - rank * part_numel(seg.bucket), seg.length);
    entries.push_back({names_[seg.parameter], slice, parameters_[seg.parameter].dim() >= 2});
  }
  steps_.assign(parameters_.size(), 0);
  inner_ = std::make_unique<Optimizer>(entries, o);
}

int64_t ShardedOptimizer::part_numel(size_t bucket) const { return buckets_->bucket_numel(bucket) / team_.size(); }

const GradientBuckets::Placement& ShardedOptimizer::where(size_t k) const {
  return buckets_->placement(model_position_[k]);
}

void ShardedOptimizer::zero_grad() {
  for (auto& p : parameters_) p.mutable_grad() = torch::Tensor();
}

double ShardedOptimizer::clip_and_step() {
  const double norm = inner_->clip_and_step([this](double squared) {
    reducer_.sum(&squared, 1);
    return squared;
  });
  if (!std::isfinite(norm)) return norm;  // the same on every rank: nobody updated
  for (auto& s : steps_) ++s;
  // Every rank's updated part into every rank's parameters (views of the buckets).
  std::vector<std::unique_ptr<dist::PendingBucket>> gathers;
  for (auto& flat : bucket_parameters_) gathers.push_back(reducer_.start_all_gather(flat));
  for (auto& g : gathers) g->wait();
  return norm;
}

void ShardedOptimizer::load_moments(size_t k, const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq,
                                    int64_t steps) {
  torch::NoGradGuard no_grad;
  const int64_t offset = where(k).offset;
  const auto m1 = exp_avg.reshape({-1}), m2 = exp_avg_sq.reshape({-1});
  for (size_t s : segments_of_[k]) {
    const auto& seg = segments_[s];
    inner_->exp_avg(s).copy_(m1.narrow(0, seg.begin - offset, seg.length));
    inner_->exp_avg_sq(s).copy_(m2.narrow(0, seg.begin - offset, seg.length));
    inner_->set_steps(s, steps);
  }
  steps_[k] = steps;
}

void ShardedOptimizer::collect_moments(std::vector<NamedTensor>& exp_avg, std::vector<NamedTensor>& exp_avg_sq) {
  torch::NoGradGuard no_grad;
  // Bucket by bucket: this rank's part (zeros where it owns padding) gathered on rank 0.
  std::vector<torch::Tensor> whole_m1(buckets_->num_buckets()), whole_m2(buckets_->num_buckets());
  for (size_t b = 0; b < buckets_->num_buckets(); ++b) {
    const int64_t part = part_numel(b);
    auto m1 = torch::zeros({part}, torch::kFloat32), m2 = torch::zeros({part}, torch::kFloat32);
    for (size_t s = 0; s < segments_.size(); ++s) {
      const auto& seg = segments_[s];
      if (seg.bucket != b) continue;
      m1.narrow(0, seg.begin - team_.rank() * part, seg.length).copy_(inner_->exp_avg(s));
      m2.narrow(0, seg.begin - team_.rank() * part, seg.length).copy_(inner_->exp_avg_sq(s));
    }
    if (team_.rank() == 0) {
      whole_m1[b] = torch::empty({part * team_.size()}, torch::kFloat32);
      whole_m2[b] = torch::empty({part * team_.size()}, torch::kFloat32);
    }
    team_.gather(m1.data_ptr<float>(), static_cast<size_t>(part),
                 team_.rank() == 0 ? whole_m1[b].data_ptr<float>() : nullptr, 0);
    team_.gather(m2.data_ptr<float>(), static_cast<size_t>(part),
                 team_.rank() == 0 ? whole_m2[b].data_ptr<float>() : nullptr, 0);
  }
  if (team_.rank() != 0) return;
  for (size_t k = 0; k < parameters_.size(); ++k) {
    const auto& at = where(k);
    const auto& p = parameters_[k];
    exp_avg.push_back(
        {names_[k], whole_m1[at.bucket].narrow(0, at.offset, p.numel()).view(p.sizes()).clone(), steps_[k]});
    exp_avg_sq.push_back(
        {names_[k], whole_m2[at.bucket].narrow(0, at.offset, p.numel()).view(p.sizes()).clone(), steps_[k]});
  }
}

double ShardedOptimizer::state_fraction() const {
  int64_t mine = 0, total = 0;
  for (const auto& seg : segments_) mine += seg.length;
  for (const auto& p : parameters_) total += p.numel();
  return total > 0 ? static_cast<double>(mine) / static_cast<double>(total) : 0.0;
}

}  // namespace hnas::pretrain
