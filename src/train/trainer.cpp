// SPDX-License-Identifier: Apache-2.0
#include "hnas/train/trainer.hpp"

#include <chrono>
#include <cmath>

#include "hnas/core/check.hpp"
#include "hnas/core/log.hpp"
#include "hnas/dist/gradient_reducer.hpp"
#include "hnas/train/fused_adamw.hpp"
#include "hnas/train/fused_cross_entropy.hpp"
#include "hnas/train/metrics.hpp"

namespace hnas::train {

const char* run_status_name(RunStatus status) {
  switch (status) {
    case RunStatus::Completed:
      return "completed";
    case RunStatus::ReachedTarget:
      return "reached_target";
    case RunStatus::Diverged:
      return "diverged";
    case RunStatus::TimedOut:
      return "timed_out";
    case RunStatus::Stopped:
      return "stopped";
    case RunStatus::OutOfMemory:
      return "out_of_memory";
  }
  return "?";
}

RunStatus parse_run_status(const std::string& name) {
  for (auto status : {RunStatus::Completed, RunStatus::ReachedTarget, RunStatus::Diverged, RunStatus::TimedOut,
                      RunStatus::Stopped, RunStatus::OutOfMemory})
    if (name == run_status_name(status)) return status;
  throw InputError("unknown training run status \"" + name + "\"");
}

torch::Tensor summed_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets) {
  // CPU float32 (the usual case): one pass for the loss and its gradient.
  if (fused_cross_entropy_applies_to(logits)) {
    return fused_summed_cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}), kIgnoreIndex);
  }
  return torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreIndex).reduction(torch::kSum));
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// AdamW over two groups: matrices (and embeddings) decay, norm gains and biases do not.
// CPU float32 models use FusedAdamW (one pass, clipping folded in); anything else, e.g.
// CUDA tensors, LibTorch's AdamW after clip_grad_norm_.
class Optimizer {
 public:
  Optimizer(model::HybridModel& model, const TrainerOptions& o) {
    std::vector<torch::Tensor> decay, no_decay;
    bool fusable = true;
    for (auto& p : model->parameters()) {
      (p.dim() >= 2 || o.decay_norms_and_biases ? decay : no_decay).push_back(p);
      fusable &= p.device().is_cpu() && p.scalar_type() == torch::kFloat32 && p.is_contiguous();
    }
    if (fusable) {
      fused_ = std::make_unique<FusedAdamW>(std::vector<FusedAdamWGroup>{{decay, o.weight_decay}, {no_decay, 0.0}},
                                            FusedAdamWOptions{o.schedule.peak_lr, o.beta1, o.beta2, o.adam_eps});
      return;
    }
    parameters_ = model->parameters();
    auto defaults = torch::optim::AdamWOptions(o.schedule.peak_lr)
                        .betas({o.beta1, o.beta2})
                        .eps(o.adam_eps)
                        .weight_decay(o.weight_decay);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(defaults));
    if (!no_decay.empty()) {
      auto exempt = defaults;
      exempt.weight_decay(0.0);
      groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(exempt));
    }
    generic_ = std::make_unique<torch::optim::AdamW>(std::move(groups), defaults);
  }

  void set_lr(double lr) {
    if (fused_) return fused_->set_lr(lr);
    for (auto& group : generic_->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  }

  /// Drops the gradients, so that backward writes fresh ones instead of adding to zeros.
  void zero_grad() {
    if (fused_) return fused_->zero_grad();
    for (auto& p : parameters_) p.mutable_grad() = torch::Tensor();
  }

  /// Clips to max_norm (<= 0: no clipping) and steps; returns the norm before clipping.
  /// A non-finite norm leaves the parameters unchanged.
  double clip_and_step(double max_norm) {
    if (fused_) return fused_->clip_and_step(max_norm);
    const double norm = torch::nn::utils::clip_grad_norm_(
        parameters_, max_norm > 0 ? max_norm : std::numeric_limits<double>::infinity());
    if (std::isfinite(norm)) generic_->step();
    return norm;
  }

 private:
  std::unique_ptr<FusedAdamW> fused_;
  std::unique_ptr<torch::optim::AdamW> generic_;
  std::vector<torch::Tensor> parameters_;
};

// Smoothed step time for the ETA and throughput columns; the first steps are warm-up.
class StepTimer {
 public:
  void add(double seconds) {
    last_ = seconds;
    if (++count_ <= 2) return;
    ema_ = ema_ == 0 ? seconds : 0.9 * ema_ + 0.1 * seconds;
  }
  /// The smoothed time once past warm-up; until then the last step's.
  double seconds_per_step() const { return ema_ > 0 ? ema_ : last_; }

 private:
  int64_t count_ = 0;
  double ema_ = 0, last_ = 0;
};

// The rows of a global batch that team rank `rank` of `size` trains on.
torch::Tensor rows_of(const torch::Tensor& t, int rank, int size) {
  const int64_t rows = t.size(0);
  const int64_t begin = rows * rank / size, end = rows * (rank + 1) / size;
  return t.narrow(0, begin, end - begin);
}

enum StopCode : int64_t { kKeepGoing = 0, kTimedOut = 1, kStopped = 2 };

}  // namespace

bool is_out_of_memory(const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr) return true;
  const std::string what = e.what();
  return what.find("out of memory") != std::string::npos || what.find("DefaultCPUAllocator") != std::string::npos;
}

TrainResult train_model(model::HybridModel& model, BatchSource& data, const Evaluator& evaluate,
                        const TrainerOptions& o, const TrainingContext& context) {
  HNAS_ASSERT(o.schedule.total_steps > 0, "training needs at least one step");
  HNAS_ASSERT(o.micro_batches >= 1, "micro_batches must be >= 1");
  TrainResult result;
  const auto start = Clock::now();
  Optimizer optimizer(model, o);
  StepTimer timer;
  // A one-rank team needs no reduction on the CPU; a GPU reducer is kept (it is NCCL's test).
  const auto parameters = model->parameters();
  const auto device = parameters.front().device();
  dist::GradientReducer* const team =
      context.reducer != nullptr && (context.reducer->size() > 1 || !device.is_cpu()) ? context.reducer : nullptr;
  if (team) team->broadcast_from_leader(parameters);  // identical start even if seeding differs

  auto run_evaluation = [&](int64_t step) {
    model->eval();
    EvalPoint point{step, evaluate(model)};
    if (team) {
      // Every rank evaluated the same model; rank 0's figures decide for all, so a last-bit
      // difference can never send the ranks different ways.
      double figures[4] = {point.metrics.loss, point.metrics.accuracy, point.metrics.micro_accuracy,
                           point.metrics.perplexity};
      team->broadcast_from_leader(figures, 4);
      point.metrics = {figures[0], figures[1], figures[2], figures[3]};
    }
    model->train();
    result.evals.push_back(point);
    if (result.best.step < 0 || point.metrics.perplexity < result.best.metrics.perplexity) result.best = point;
    if (o.log_every > 0)
      log::info(log::format("%s eval step %ld | loss %.4f | acc %.4f | micro acc %.4f", o.label.c_str(),
                            static_cast<long>(step), point.metrics.loss, point.metrics.accuracy,
                            point.metrics.micro_accuracy));
    return point;
  };

  model->train();
  try {
    for (int64_t step = 0; step < o.schedule.total_steps; ++step) {
      int64_t stop = kKeepGoing;
      if (o.max_seconds > 0 && seconds_since(start) > o.max_seconds) stop = kTimedOut;
      if (context.should_stop && context.should_stop()) stop = kStopped;
      if (team) stop = team->max(stop);
      if (stop != kKeepGoing) {
        result.status = stop == kStopped ? RunStatus::Stopped : RunStatus::TimedOut;
        break;
      }
      const auto step_start = Clock::now();
      const double lr = o.schedule.at(step);
      optimizer.set_lr(lr);
      optimizer.zero_grad();

      Batch batch = data.next();
      if (batch.inputs.device() != device) batch = {batch.inputs.to(device), batch.targets.to(device)};
      const int64_t scored = (batch.targets != kIgnoreIndex).sum().item<int64_t>();
      const double normaliser = static_cast<double>(std::max<int64_t>(scored, 1));
      double loss_sum = 0;
      const auto local_inputs = team ? rows_of(batch.inputs, team->rank(), team->size()) : batch.inputs;
      const auto local_targets = team ? rows_of(batch.targets, team->rank(), team->size()) : batch.targets;
      if (local_inputs.size(0) > 0) {
        const auto inputs = local_inputs.chunk(o.micro_batches, 0);
        const auto targets = local_targets.chunk(o.micro_batches, 0);
        for (size_t m = 0; m < inputs.size(); ++m) {
          auto loss = summed_cross_entropy(model->forward(inputs[m]), targets[m]) / normaliser;
          loss.backward();
          loss_sum += loss.item<double>();
        }
      }
      if (team) {
        // The loss was normalised by the global batch's scored tokens: sums are the global values.
        team->sum_gradients(parameters);
        team->sum(&loss_sum, 1);
      }
      result.tokens += batch.inputs.numel();
      // A non-finite loss or gradient ends the run before the update: a diverged candidate.
      const double grad_norm = std::isfinite(loss_sum) ? optimizer.clip_and_step(o.grad_clip) : NAN;
      result.curve.push_back({step, loss_sum, lr, grad_norm});
      if (!std::isfinite(grad_norm)) {
        result.status = RunStatus::Diverged;
        result.steps = step;
        break;
      }
      result.steps = step + 1;
      timer.add(seconds_since(step_start));

      if (o.log_every > 0 && (step % o.log_every == 0 || step + 1 == o.schedule.total_steps)) {
        const double sps = timer.seconds_per_step();
        const double tokens_per_s = sps > 0 ? static_cast<double>(batch.inputs.numel()) / sps : 0;
        std::string line =
            log::format("%s step %ld/%ld | loss %.4f | lr %.2e | norm %.3f | %.1f ms | %.0f tok/s", o.label.c_str(),
                        static_cast<long>(step + 1), static_cast<long>(o.schedule.total_steps), loss_sum, lr, grad_norm,
                        1e3 * sps, tokens_per_s);
        if (o.peak_flops > 0 && o.train_flops_per_token > 0)
          line += log::format(" | MFU %.1f%%", 100.0 * tokens_per_s * o.train_flops_per_token / o.peak_flops);
        line += " | ETA " + log::format_duration(sps * static_cast<double>(o.schedule.total_steps - step - 1));
        log::info(line);
      }

      const bool last = step + 1 == o.schedule.total_steps;
      if (evaluate && ((o.eval_every > 0 && (step + 1) % o.eval_every == 0) || last)) {
        const EvalPoint point = run_evaluation(step + 1);
        if (!std::isfinite(point.metrics.loss)) {
          result.status = RunStatus::Diverged;
          break;
        }
        if (o.target_accuracy > 0 && point.metrics.accuracy >= o.target_accuracy) {
          result.status = last ? RunStatus::Completed : RunStatus::ReachedTarget;
          break;
        }
      }
    }
  } catch (const c10::Error& e) {
    // Out of memory on one rank of a team cannot be agreed on without a collective the
    // others are not in: it ends the job instead (the caller aborts).
    if (!is_out_of_memory(e) || (team && team->size() > 1)) throw;
    result.status = RunStatus::OutOfMemory;
  }
  // Runs cut short still get a final evaluation so they can be ranked.
  if (evaluate && result.steps > 0 && (result.evals.empty() || result.evals.back().step != result.steps) &&
      result.status != RunStatus::Diverged && result.status != RunStatus::OutOfMemory &&
      result.status != RunStatus::Stopped) {  // a stopped run is run again: no point scoring it
    run_evaluation(result.steps);
  }
  model->eval();
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace hnas::train
