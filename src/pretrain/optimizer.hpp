// SPDX-License-Identifier: Apache-2.0
// The pre-training optimizer (internal to pretrain/): AdamW with decoupled weight decay on
// the matrices, gradient clipping, and the state a checkpoint saves and restores (moments
// and step counts by parameter name). Rank-local: every rank steps its own copy.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "hnas/pretrain/pretrain.hpp"
#include "hnas/train/fused_adamw.hpp"

namespace hnas::pretrain {

// AdamW over the model's parameters: matrices decay, norm gains do not. CPU float32 uses
// the fused one-pass kernel; elsewhere the same arithmetic in tensor operations.
class Optimizer {
 public:
  Optimizer(const std::vector<std::pair<std::string, torch::Tensor>>& named, const PretrainOptions& o) : options_(o) {
    std::vector<torch::Tensor> decay, keep;
    std::vector<std::string> decay_names, keep_names;
    bool fusable = true;
    for (const auto& [name, p] : named) {
      (p.dim() >= 2 ? decay : keep).push_back(p);
      (p.dim() >= 2 ? decay_names : keep_names).push_back(name);
      fusable &= p.device().is_cpu() && p.scalar_type() == torch::kFloat32 && p.is_contiguous();
    }
    names_ = decay_names;
    names_.insert(names_.end(), keep_names.begin(), keep_names.end());
    parameters_ = decay;
    parameters_.insert(parameters_.end(), keep.begin(), keep.end());
    decays_.assign(decay.size(), o.weight_decay);
    decays_.resize(parameters_.size(), 0.0);
    if (fusable) {
      fused_ = std::make_unique<train::FusedAdamW>(
          std::vector<train::FusedAdamWGroup>{{decay, o.weight_decay}, {keep, 0.0}},
          train::FusedAdamWOptions{o.schedule.peak_lr, o.beta1, o.beta2, o.adam_eps});
      return;
    }
    for (const auto& p : parameters_) {
      exp_avg_.push_back(torch::zeros_like(p));
      exp_avg_sq_.push_back(torch::zeros_like(p));
    }
    steps_.assign(parameters_.size(), 0);
  }

  void set_lr(double lr) {
    lr_ = lr;
    if (fused_) fused_->set_lr(lr);
  }

  void zero_grad() {
    for (auto& p : parameters_) p.mutable_grad() = torch::Tensor();
  }

  /// Clips to grad_clip and steps; returns the norm before clipping (non-finite: no update).
  double clip_and_step() {
    if (fused_) return fused_->clip_and_step(options_.grad_clip);
    const double norm = torch::nn::utils::clip_grad_norm_(
        parameters_, options_.grad_clip > 0 ? options_.grad_clip : std::numeric_limits<double>::infinity());
    if (!std::isfinite(norm)) return norm;
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < parameters_.size(); ++i) {
      auto& p = parameters_[i];
      if (!p.grad().defined()) continue;
      const int64_t t = ++steps_[i];
      exp_avg_[i].mul_(options_.beta1).add_(p.grad(), 1 - options_.beta1);
      exp_avg_sq_[i].mul_(options_.beta2).addcmul_(p.grad(), p.grad(), 1 - options_.beta2);
      const double correction1 = 1 - std::pow(options_.beta1, static_cast<double>(t));
      const double correction2 = 1 - std::pow(options_.beta2, static_cast<double>(t));
      p.mul_(1 - lr_ * decays_[i]);
      const auto denominator = (exp_avg_sq_[i] / correction2).sqrt_().add_(options_.adam_eps);
      p.addcdiv_(exp_avg_[i], denominator, -lr_ / correction1);
    }
    return norm;
  }

  const std::vector<std::string>& names() const { return names_; }
  const std::vector<torch::Tensor>& parameters() const { return parameters_; }
  torch::Tensor exp_avg(size_t i) const { return fused_ ? fused_->exp_avg(i) : exp_avg_[i]; }
  torch::Tensor exp_avg_sq(size_t i) const { return fused_ ? fused_->exp_avg_sq(i) : exp_avg_sq_[i]; }
  int64_t steps(size_t i) const { return fused_ ? fused_->step_count(i) : steps_[i]; }
  void set_steps(size_t i, int64_t n) {
    if (fused_)
      fused_->set_step_count(i, n);
    else
      steps_[i] = n;
  }

 private:
  PretrainOptions options_;
  std::unique_ptr<train::FusedAdamW> fused_;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> parameters_, exp_avg_, exp_avg_sq_;
  std::vector<double> decays_;
  std::vector<int64_t> steps_;
  double lr_ = 0;
};

}  // namespace hnas::pretrain
