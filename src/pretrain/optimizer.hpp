// SPDX-License-Identifier: Apache-2.0
// The pre-training optimizer (internal to pretrain/): AdamW with decoupled weight decay on
// the matrices, gradient clipping by the global norm, and the state a checkpoint saves
// and restores (moments and step counts per tensor). Rank-local: it steps the tensors it
// is given, the whole model (replicated data parallelism) or this rank's shard of it
// (ZeRO-1, sharded_optimizer.hpp, which adds up the squared norms over the team).
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "hnas/pretrain/checkpoint.hpp"
#include "hnas/pretrain/pretrain.hpp"
#include "hnas/train/fused_adamw.hpp"

namespace hnas::pretrain {

/// A tensor AdamW updates from its .grad: a parameter, or a slice of one.
struct OptimizerEntry {
  std::string name;
  torch::Tensor tensor;
  bool decay = false;  ///< weight decay applies (matrices, not norm gains)
};

/// The model's parameters, matrices decayed.
inline std::vector<OptimizerEntry> entries_of(const std::vector<std::pair<std::string, torch::Tensor>>& named) {
  std::vector<OptimizerEntry> entries;
  for (const auto& [name, p] : named) entries.push_back({name, p, p.dim() >= 2});
  return entries;
}

// AdamW over the entries, decayed ones first. CPU float32 uses the fused one-pass kernel;
// elsewhere the same arithmetic in tensor operations.
class Optimizer {
 public:
  Optimizer(const std::vector<OptimizerEntry>& entries, const PretrainOptions& o) : options_(o) {
    std::vector<torch::Tensor> decay, keep;
    std::vector<std::string> decay_names, keep_names;
    bool fusable = true;
    for (const auto& e : entries) {
      (e.decay ? decay : keep).push_back(e.tensor);
      (e.decay ? decay_names : keep_names).push_back(e.name);
      fusable &= e.tensor.device().is_cpu() && e.tensor.scalar_type() == torch::kFloat32 && e.tensor.is_contiguous();
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

  /// Sum of the squares of the gradients of the entries (float64).
  double grad_squared_norm() const {
    if (fused_) return fused_->grad_squared_norm();
    torch::NoGradGuard no_grad;
    torch::Tensor total;
    for (const auto& p : parameters_) {
      if (!p.grad().defined()) continue;
      auto s = p.grad().to(torch::kFloat64).square().sum();
      total = total.defined() ? total + s : s;
    }
    return total.defined() ? total.item<double>() : 0.0;
  }

  /// Clips to grad_clip by the norm sqrt(total(squared norm)) and steps; returns that norm
  /// (non-finite: no update). `total` adds the other ranks' part (ZeRO-1); by default the
  /// entries are the whole model.
  double clip_and_step(const std::function<double(double)>& total = {}) {
    const double squared = grad_squared_norm();
    const double norm = std::sqrt(total ? total(squared) : squared);
    if (!std::isfinite(norm)) return norm;
    // clip_grad_norm_'s rule: scale by max_norm / (norm + 1e-6) when that is below one.
    const double scale = options_.grad_clip > 0 ? std::min(1.0, options_.grad_clip / (norm + 1e-6)) : 1.0;
    if (fused_) {
      fused_->step(scale);
      return norm;
    }
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < parameters_.size(); ++i) {
      auto& p = parameters_[i];
      if (!p.grad().defined()) continue;
      const auto grad = scale < 1.0 ? p.grad() * scale : p.grad();
      const int64_t t = ++steps_[i];
      exp_avg_[i].mul_(options_.beta1).add_(grad, 1 - options_.beta1);
      exp_avg_sq_[i].mul_(options_.beta2).addcmul_(grad, grad, 1 - options_.beta2);
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

/// What the training loop steps: the model's parameters (listed matrices first, the order
/// of the checkpoint's tensors) and their AdamW state, replicated on every rank or sharded.
class ModelOptimizer {
 public:
  virtual ~ModelOptimizer() = default;
  virtual void set_lr(double lr) = 0;
  virtual void zero_grad() = 0;
  /// After the gradients are summed (or reduce-scattered): clips and steps, and returns the
  /// global gradient norm (non-finite: no update). Collective for the sharded one.
  virtual double clip_and_step() = 0;
  virtual const std::vector<std::string>& names() const = 0;
  virtual const std::vector<torch::Tensor>& parameters() const = 0;
  /// The whole moments and step count of parameter i (CPU tensors shaped like it), as a
  /// checkpoint holds them; each rank keeps what it owns. Rank-local.
  virtual void load_moments(size_t i, const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq, int64_t steps) = 0;
  /// Every parameter's whole moments, on rank 0 as CPU tensors (empty elsewhere), for a
  /// checkpoint. Collective for the sharded one.
  virtual void collect_moments(std::vector<NamedTensor>& exp_avg, std::vector<NamedTensor>& exp_avg_sq) = 0;
};

/// Every rank holds and steps the whole state (plain data parallelism, or one rank).
class ReplicatedOptimizer final : public ModelOptimizer {
 public:
  /// `rank`: this rank in the team (rank 0 collects the moments).
  ReplicatedOptimizer(const std::vector<std::pair<std::string, torch::Tensor>>& named, const PretrainOptions& o,
                      int rank)
      : inner_(entries_of(named), o), rank_(rank) {}
  void set_lr(double lr) override { inner_.set_lr(lr); }
  void zero_grad() override { inner_.zero_grad(); }
  double clip_and_step() override { return inner_.clip_and_step(); }
  const std::vector<std::string>& names() const override { return inner_.names(); }
  const std::vector<torch::Tensor>& parameters() const override { return inner_.parameters(); }
  void load_moments(size_t i, const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq, int64_t steps) override {
    torch::NoGradGuard no_grad;
    inner_.exp_avg(i).copy_(exp_avg);
    inner_.exp_avg_sq(i).copy_(exp_avg_sq);
    inner_.set_steps(i, steps);
  }
  void collect_moments(std::vector<NamedTensor>& exp_avg, std::vector<NamedTensor>& exp_avg_sq) override {
    if (rank_ != 0) return;
    for (size_t i = 0; i < inner_.names().size(); ++i) {
      exp_avg.push_back({inner_.names()[i], inner_.exp_avg(i).to(torch::kCPU).clone(), inner_.steps(i)});
      exp_avg_sq.push_back({inner_.names()[i], inner_.exp_avg_sq(i).to(torch::kCPU).clone(), inner_.steps(i)});
    }
  }

 private:
  Optimizer inner_;
  int rank_;
};

}  // namespace hnas::pretrain
