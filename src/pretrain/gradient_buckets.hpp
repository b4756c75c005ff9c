// SPDX-License-Identifier: Apache-2.0
// Gradient reduction in buckets, overlapped with the backward pass as PyTorch DDP does it
// (internal to pretrain/). The parameters are grouped into buckets of about
// `bucket_bytes` in reverse order (the order backward produces their gradients); a hook on
// every parameter copies its gradient into its bucket as soon as autograd has computed
// it, and a full bucket's reduction starts at once, non-blocking (MPI or NCCL), while
// backward goes on with the earlier layers. finish() waits for the last buckets.
//
// Two reductions: Sum gives every rank the summed gradient of every parameter (plain data
// parallelism); ReduceScatter gives each rank only its part of every summed bucket, the
// part of the optimizer state it owns under ZeRO-1 (sharded_optimizer.hpp). Buckets are
// padded with zeros to a multiple of the team size, so that every rank's part is as long.
//
// Collective over the reducer's team: every rank has the same parameters and runs the same
// backward passes, so the buckets start in the same order everywhere.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "hnas/dist/gradient_reducer.hpp"

namespace hnas::pretrain {

enum class BucketReduction { Sum, ReduceScatter };

class GradientBuckets {
 public:
  /// Registers a hook on every parameter (float32, on one device). The reducer and the
  /// parameters must outlive it.
  GradientBuckets(dist::GradientReducer& reducer, const std::vector<torch::Tensor>& parameters, size_t bucket_bytes,
                  BucketReduction reduction);

  /// The next backward pass is the step's last (micro-batch): reduce during it. The
  /// earlier micro-batches accumulate into .grad as usual. Without arm() (no overlap)
  /// finish() reduces everything after the backward pass.
  void arm();
  /// After the step's last backward: starts what is left, waits for every bucket. Sum:
  /// each parameter's .grad becomes its sum over the team. ReduceScatter: shard(b) holds
  /// this rank's part of bucket b's sum, and .grad is dropped. Returns the seconds
  /// spent waiting here (the part of the reduction not hidden behind the backward pass).
  /// Collective.
  double finish();

  /// Where parameter k's elements lie: bucket, and offset in it.
  struct Placement {
    size_t bucket = 0;
    int64_t offset = 0;
  };
  const Placement& placement(size_t parameter) const { return placements_[parameter]; }
  size_t num_buckets() const { return buckets_.size(); }
  /// Elements of bucket b, a multiple of the team size (zeros past its parameters).
  int64_t bucket_numel(size_t b) const { return buckets_[b].flat.numel(); }
  /// ReduceScatter: this rank's part of bucket b, elements [rank x n, (rank + 1) x n) with
  /// n = bucket_numel(b) / team size, summed over the team (valid after finish()).
  const torch::Tensor& shard(size_t b) const { return buckets_[b].shard; }

 private:
  struct Bucket {
    torch::Tensor flat;   // the bucket's gradients end to end, then padding
    torch::Tensor shard;  // ReduceScatter: this rank's part of the sum
    std::vector<size_t> parameters;
    size_t ready = 0;
    std::unique_ptr<dist::PendingBucket> pending;
  };
  void on_gradient(size_t parameter, const torch::Tensor& grad);
  void start(Bucket& bucket);

  dist::GradientReducer& reducer_;
  BucketReduction reduction_;
  std::vector<torch::Tensor> parameters_;
  std::vector<Placement> placements_;
  std::vector<bool> ready_;  // per parameter, this backward pass
  std::vector<Bucket> buckets_;
  bool armed_ = false;
};

}  // namespace hnas::pretrain
