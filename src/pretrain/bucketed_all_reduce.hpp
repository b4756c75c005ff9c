// SPDX-License-Identifier: Apache-2.0
// Gradient all-reduce overlapped with the backward pass (internal to pretrain/), as
// PyTorch DDP does it on the CPU with MPI: the parameters are grouped into buckets of
// about `bucket_bytes` in reverse order (the order backward produces their gradients);
// a hook on every parameter copies its gradient into its bucket as soon as autograd has
// computed it, and a full bucket's sum over the ranks starts at once (non-blocking) while
// backward goes on with the earlier layers. finish() waits for the last buckets and hands
// each parameter the summed gradient.
//
// Collective over `team`: every rank has the same parameters and runs the same backward
// passes, so the buckets start in the same order everywhere.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "hnas/dist/communicator.hpp"

namespace hnas::pretrain {

class BucketedAllReduce {
 public:
  /// Registers a hook on every parameter (CPU float32). `team` and the parameters must
  /// outlive it.
  BucketedAllReduce(const dist::Communicator& team, const std::vector<torch::Tensor>& parameters, size_t bucket_bytes);

  /// The next backward pass is the step's last (micro-batch): reduce during it. The
  /// earlier micro-batches accumulate into .grad as usual.
  void arm();
  /// After that backward: starts what is left, waits for every bucket and makes each
  /// parameter's .grad its sum over the team. Returns the seconds spent waiting here
  /// (the part of the all-reduce not hidden behind the backward pass). Collective.
  double finish();

  size_t num_buckets() const { return buckets_.size(); }

 private:
  struct Slot {
    size_t parameter;
    int64_t offset;
    bool ready = false;
  };
  struct Bucket {
    torch::Tensor flat;  // float32, the bucket's gradients end to end
    std::vector<size_t> slots;
    size_t ready = 0;
    dist::PendingSum sum;
    bool started = false;
  };
  void on_gradient(size_t parameter, const torch::Tensor& grad);
  void start(Bucket& bucket);

  const dist::Communicator& team_;
  std::vector<torch::Tensor> parameters_;
  std::vector<Slot> slots_;        // per parameter
  std::vector<size_t> bucket_of_;  // per parameter
  std::vector<Bucket> buckets_;
  bool armed_ = false;
};

}  // namespace hnas::pretrain
