// SPDX-License-Identifier: Apache-2.0
#include "bucketed_all_reduce.hpp"

#include <chrono>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"

namespace hnas::pretrain {

BucketedAllReduce::BucketedAllReduce(const dist::Communicator& team, const std::vector<torch::Tensor>& parameters,
                                     size_t bucket_bytes)
    : team_(team), parameters_(parameters), slots_(parameters.size()), bucket_of_(parameters.size()) {
  // Reverse order: the last layers' gradients come first in the backward pass.
  std::vector<std::vector<size_t>> members(1);
  size_t bytes = 0;
  for (size_t k = parameters_.size(); k-- > 0;) {
    const auto& p = parameters_[k];
    HNAS_ASSERT(p.device().is_cpu() && p.scalar_type() == torch::kFloat32,
                "the overlapped all-reduce takes CPU float32 parameters");
    const size_t size = static_cast<size_t>(p.numel()) * sizeof(float);
    if (bytes > 0 && bytes + size > bucket_bytes) {
      members.emplace_back();
      bytes = 0;
    }
    members.back().push_back(k);
    bytes += size;
  }
  for (const auto& list : members) {
    Bucket bucket;
    int64_t offset = 0;
    for (size_t k : list) {
      slots_[k] = {k, offset};
      bucket_of_[k] = buckets_.size();
      bucket.slots.push_back(k);
      offset += parameters_[k].numel();
    }
    bucket.flat = torch::zeros({offset}, torch::kFloat32);
    buckets_.push_back(std::move(bucket));
  }
  for (size_t k = 0; k < parameters_.size(); ++k)
    parameters_[k].register_hook([this, k](const torch::Tensor& grad) { on_gradient(k, grad); });
}

void BucketedAllReduce::arm() {
  armed_ = true;
  for (auto& slot : slots_) slot.ready = false;
  for (auto& bucket : buckets_) {
    bucket.ready = 0;
    bucket.started = false;
  }
}

void BucketedAllReduce::on_gradient(size_t k, const torch::Tensor& grad) {
  if (!armed_) return;
  torch::NoGradGuard no_grad;
  Slot& slot = slots_[k];
  Bucket& bucket = buckets_[bucket_of_[k]];
  HNAS_ASSERT(!slot.ready, "parameter " << k << " got two gradients in one backward pass");
  // This pass's gradient plus what the earlier micro-batches accumulated: the step's.
  auto target = bucket.flat.narrow(0, slot.offset, grad.numel()).view(grad.sizes());
  const auto& accumulated = parameters_[k].grad();
  if (accumulated.defined())
    torch::add_out(target, accumulated, grad);
  else
    target.copy_(grad);
  slot.ready = true;
  if (++bucket.ready == bucket.slots.size()) start(bucket);
  for (auto& b : buckets_)  // let MPI move the buckets already in flight
    if (b.started) b.sum.test();
}

void BucketedAllReduce::start(Bucket& bucket) {
  bucket.sum = team_.start_all_reduce_sum(bucket.flat.data_ptr<float>(), static_cast<size_t>(bucket.flat.numel()));
  bucket.started = true;
}

double BucketedAllReduce::finish() {
  HNAS_ASSERT(armed_, "finish() without arm()");
  armed_ = false;
  torch::NoGradGuard no_grad;
  const auto begin = std::chrono::steady_clock::now();
  // Buckets are started in the same order on every rank: a parameter without a gradient
  // (unused this step) counts as zeros, in bucket order.
  for (auto& bucket : buckets_) {
    if (bucket.started) continue;
    for (size_t k : bucket.slots)
      if (!slots_[k].ready) {
        auto target = bucket.flat.narrow(0, slots_[k].offset, parameters_[k].numel());
        const auto& accumulated = parameters_[k].grad();
        if (accumulated.defined())
          target.copy_(accumulated.reshape({-1}));
        else
          target.zero_();
      }
    start(bucket);
  }
  for (auto& bucket : buckets_) bucket.sum.wait();
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  for (size_t k = 0; k < parameters_.size(); ++k) {
    auto& p = parameters_[k];
    p.mutable_grad() = buckets_[bucket_of_[k]].flat.narrow(0, slots_[k].offset, p.numel()).view(p.sizes());
  }
  return waited;
}

}  // namespace hnas::pretrain
