// SPDX-License-Identifier: Apache-2.0
#include "gradient_buckets.hpp"

#include <chrono>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"

namespace hnas::pretrain {

namespace {
// Each rank's part starts on a 64-byte boundary (16 floats), for the vectorised optimizer.
constexpr int64_t kPartAlign = 16;
}  // namespace

GradientBuckets::GradientBuckets(dist::GradientReducer& reducer, const std::vector<torch::Tensor>& parameters,
                                 size_t bucket_bytes, BucketReduction reduction)
    : reducer_(reducer),
      reduction_(reduction),
      parameters_(parameters),
      placements_(parameters.size()),
      ready_(parameters.size(), false) {
  HNAS_ASSERT(!parameters_.empty(), "no parameters");
  const auto options = parameters_.front().options();
  // Reverse order: the last layers' gradients come first in the backward pass.
  std::vector<std::vector<size_t>> members(1);
  size_t bytes = 0;
  for (size_t k = parameters_.size(); k-- > 0;) {
    const auto& p = parameters_[k];
    HNAS_ASSERT(p.scalar_type() == torch::kFloat32 && p.device() == parameters_.front().device(),
                "gradient buckets take float32 parameters on one device");
    const size_t size = static_cast<size_t>(p.numel()) * sizeof(float);
    if (bytes > 0 && bytes + size > bucket_bytes) {
      members.emplace_back();
      bytes = 0;
    }
    members.back().push_back(k);
    bytes += size;
  }
  // The first parameter (the token embedding) gets its gradient last, when backward ends:
  // alone in the last bucket, only its own reduction is left exposed, not its bucket's.
  if (members.back().size() > 1) {
    const size_t last = members.back().back();
    members.back().pop_back();
    members.push_back({last});
  }
  const int64_t team = reducer_.size();
  for (const auto& list : members) {
    Bucket bucket;
    int64_t offset = 0;
    for (size_t k : list) {
      placements_[k] = {buckets_.size(), offset};
      bucket.parameters.push_back(k);
      offset += parameters_[k].numel();
    }
    const int64_t part = (offset + team - 1) / team;
    const int64_t aligned = reduction_ == BucketReduction::ReduceScatter && team > 1
                                ? (part + kPartAlign - 1) / kPartAlign * kPartAlign
                                : part;
    bucket.flat = torch::zeros({aligned * team}, options);
    if (reduction_ == BucketReduction::ReduceScatter) bucket.shard = torch::zeros({aligned}, options);
    buckets_.push_back(std::move(bucket));
  }
  for (size_t k = 0; k < parameters_.size(); ++k)
    parameters_[k].register_hook([this, k](const torch::Tensor& grad) { on_gradient(k, grad); });
}

void GradientBuckets::arm() {
  armed_ = true;
  std::fill(ready_.begin(), ready_.end(), false);
  for (auto& bucket : buckets_) bucket.ready = 0;
}

// Runs inside backward (on CUDA, on autograd's device thread): no MPI on a GPU team.
void GradientBuckets::on_gradient(size_t k, const torch::Tensor& grad) {
  if (!armed_) return;
  torch::NoGradGuard no_grad;
  const Placement& where = placements_[k];
  Bucket& bucket = buckets_[where.bucket];
  HNAS_ASSERT(!ready_[k], "parameter " << k << " got two gradients in one backward pass");
  // This pass's gradient plus what the earlier micro-batches accumulated: the step's.
  auto target = bucket.flat.narrow(0, where.offset, grad.numel()).view(grad.sizes());
  const auto& accumulated = parameters_[k].grad();
  if (accumulated.defined())
    torch::add_out(target, accumulated, grad);
  else
    target.copy_(grad);
  ready_[k] = true;
  if (++bucket.ready == bucket.parameters.size()) start(bucket);
  for (auto& b : buckets_)  // let MPI move the buckets already in flight
    if (b.pending) b.pending->test();
}

void GradientBuckets::start(Bucket& bucket) {
  bucket.pending = reduction_ == BucketReduction::Sum ? reducer_.start_sum(bucket.flat)
                                                      : reducer_.start_reduce_scatter(bucket.flat, bucket.shard);
}

double GradientBuckets::finish() {
  const bool overlapped = armed_;
  armed_ = false;
  torch::NoGradGuard no_grad;
  const auto begin = std::chrono::steady_clock::now();
  // Buckets start in the same order on every rank: the ones backward did not fill (no
  // overlap, or a parameter without a gradient this step, which counts as zeros) now.
  for (auto& bucket : buckets_) {
    if (overlapped && bucket.ready == bucket.parameters.size()) continue;
    for (size_t k : bucket.parameters) {
      if (overlapped && ready_[k]) continue;
      auto target = bucket.flat.narrow(0, placements_[k].offset, parameters_[k].numel());
      const auto& accumulated = parameters_[k].grad();
      if (accumulated.defined())
        target.copy_(accumulated.reshape({-1}));
      else
        target.zero_();
    }
    start(bucket);
  }
  for (auto& bucket : buckets_) {
    bucket.pending->wait();
    bucket.pending.reset();
  }
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  for (size_t k = 0; k < parameters_.size(); ++k) {
    auto& p = parameters_[k];
    const auto& where = placements_[k];
    if (reduction_ == BucketReduction::Sum)
      p.mutable_grad() = buckets_[where.bucket].flat.narrow(0, where.offset, p.numel()).view(p.sizes());
    else
      p.mutable_grad().reset();  // the optimizer reads the shards; the local sum is spent
  }
  return waited;
}

}  // namespace hnas::pretrain
