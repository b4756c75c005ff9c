// SPDX-License-Identifier: Apache-2.0
// Shared by the step benchmark's files: the benchmark shapes, the timed training step
// (the trainer's step without its bookkeeping) and the profiling reports of step_profile.cpp and the allocator of
// caching_allocator.cpp.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "hnas/arch/genome.hpp"
#include "hnas/arch/model_shape.hpp"
#include "hnas/model/hybrid_model.hpp"
#include "hnas/train/fused_adamw.hpp"

namespace hnas::bench {

/// One benchmark configuration: a genome, widths, and the batch one step trains on.
struct BenchShape {
  std::string name;
  std::string arch;
  arch::ModelShape shape;
  int64_t seq_len;
  int64_t batch;
  int default_steps;  ///< timed steps unless --steps is given

  int64_t tokens() const { return seq_len * batch; }
  arch::Genome genome() const { return arch::Genome::parse(arch); }
};

/// Wall time of each part of one step, in seconds.
struct PhaseTimes {
  double zero_grad = 0;
  double forward = 0;
  double loss = 0;
  double backward = 0;
  double clip = 0;
  double optimizer = 0;
  double total() const { return zero_grad + forward + loss + backward + clip + optimizer; }
};

/// How gradients are cleared before each step.
enum class ZeroGrad {
  SetToNone,  ///< drop the gradient tensors (backward then writes fresh ones), as PyTorch 2 does
  Memset,     ///< torch::optim::Optimizer::zero_grad() of LibTorch 1.13 (what the trainer does)
};

/// Which AdamW implementation a step uses.
enum class Optimizer {
  Torch,  ///< torch::optim::AdamW + torch::nn::utils::clip_grad_norm_ (what the trainer does)
  Fused,  ///< train::FusedAdamW: norm pass + one update pass with the clipping folded in
};

/// A model, its AdamW (weight decay on matrices only) and pre-allocated random batches.
/// Each step is what train_model does: forward, summed cross-entropy / tokens, backward,
/// clip the gradient norm to 1.0, AdamW.
class StepRunner {
 public:
  StepRunner(const BenchShape& shape, model::Kernels kernels, Optimizer optimizer, ZeroGrad zero_grad, uint64_t seed);
  PhaseTimes step();
  int64_t num_parameters() const { return model_->num_parameters(); }
  double last_loss() const { return last_loss_; }

 private:
  model::HybridModel model_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;      // Optimizer::Torch
  std::unique_ptr<train::FusedAdamW> fused_optimizer_;  // Optimizer::Fused
  std::vector<torch::Tensor> parameters_;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> batches_;
  ZeroGrad zero_grad_;
  double normaliser_;
  size_t next_batch_ = 0;
  double last_loss_ = 0;
};

/// Times forward and backward of each piece of the two sublayers, the embedding and the
/// head, built from the same public modules and ops the model uses, and prints how the
/// step's forward + backward time divides between attention, MLP, norms and head.
void print_component_breakdown(const BenchShape& shape, model::Kernels kernels, int repeats,
                               double measured_forward_backward_s);

/// Replaces LibTorch's CPU allocator by one that caches freed blocks per size (for the
/// rest of the process), so that a step stops page-faulting its activations in anew.
void install_caching_cpu_allocator();

/// Runs `steps` steps under the LibTorch profiler and prints the self time of each op
/// (grouped by step phase, name and input shapes) and a roll-up per phase and op.
void print_op_profile(StepRunner& runner, const BenchShape& shape, int steps, int top);

}  // namespace hnas::bench
