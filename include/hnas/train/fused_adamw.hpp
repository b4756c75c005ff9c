// SPDX-License-Identifier: Apache-2.0
// AdamW for CPU float32 parameters as one multi-threaded pass per step: both moments live
// in flat buffers, the update of every element is one vectorisable loop body, and gradient
// clipping folds into that pass instead of rescaling the gradients first. The arithmetic is
// torch::optim::AdamW's (decoupled weight decay, bias correction, per-parameter step count);
// LibTorch's version makes ~10 passes over memory and one operator dispatch per pass and
// parameter, which is what this saves.
//
//   train::FusedAdamW optimizer({{matrices, /*weight_decay=*/0.1}, {gains, 0.0}}, {/*lr=*/1e-3});
//   optimizer.zero_grad();
//   loss.backward();
//   const double norm = optimizer.clip_and_step(/*max_norm=*/1.0);
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace hnas::train {

struct FusedAdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

/// Parameters that share a weight decay (e.g. matrices 0.1, norm gains and biases 0).
struct FusedAdamWGroup {
  std::vector<at::Tensor> parameters;
  double weight_decay = 0.0;
};

class FusedAdamW {
 public:
  /// Every parameter must be a contiguous CPU float32 tensor, listed once.
  FusedAdamW(std::vector<FusedAdamWGroup> groups, FusedAdamWOptions options);

  /// Global L2 norm of all gradients (float64 accumulation; missing gradients count as zero).
  double grad_norm() const;
  /// Its square, the sum of every gradient element squared (to add up the shards of ZeRO-1).
  double grad_squared_norm() const;
  /// One AdamW step on every parameter that has a gradient, each gradient multiplied by
  /// `grad_scale` on the fly (the gradients themselves are left unchanged).
  void step(double grad_scale = 1.0);
  /// clip_grad_norm_(max_norm) then step(), in two passes over the gradients instead of
  /// four: the update uses the scale min(1, max_norm / (norm + 1e-6)). Returns the norm
  /// before clipping; a non-finite norm skips the update (the caller decides what a
  /// diverged step means). max_norm <= 0 disables clipping.
  double clip_and_step(double max_norm);
  /// Drops the gradients (backward then writes fresh ones instead of adding to zeros).
  void zero_grad();

  void set_lr(double lr) { options_.lr = lr; }
  double lr() const { return options_.lr; }
  const FusedAdamWOptions& options() const { return options_; }
  /// The parameters in group order.
  std::vector<at::Tensor> parameters() const;
  /// Moment estimates of parameter `index` (views into the flat buffers, shaped like it).
  at::Tensor exp_avg(size_t index) const;
  at::Tensor exp_avg_sq(size_t index) const;
  /// Steps taken by parameter `index` (it advances only when that parameter has a gradient).
  int64_t step_count(size_t index) const { return slots_.at(index).steps; }
  /// Restores the step count of parameter `index` (resuming from a checkpoint).
  void set_step_count(size_t index, int64_t steps) { slots_.at(index).steps = steps; }
  size_t num_parameters() const { return slots_.size(); }

 private:
  struct Slot {
    at::Tensor parameter;
    int64_t offset;  // into the flat moment buffers, 64-byte aligned
    double weight_decay;
    int64_t steps = 0;
  };
  std::vector<Slot> slots_;
  at::Tensor exp_avg_;     // [total] float32
  at::Tensor exp_avg_sq_;  // [total] float32
  FusedAdamWOptions options_;
};

}  // namespace hnas::train
