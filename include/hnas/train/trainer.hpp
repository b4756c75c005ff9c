// SPDX-License-Identifier: Apache-2.0
// The training loop for one model on one process: AdamW with decoupled weight decay
// (norm gains and biases exempt unless asked), a step-wise LR schedule, gradient
// accumulation, clipping, periodic evaluation, early stop at a target accuracy, and a
// wall-clock budget. A NaN/inf loss or gradient ends the run with status Diverged: a
// diverged candidate is data, not an error.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "hnas/model/hybrid_model.hpp"
#include "hnas/train/schedule.hpp"

namespace hnas::dist {
class GradientReducer;
}

namespace hnas::train {

/// One optimisation step's worth of data: inputs [B, T] int64 and targets (kIgnoreIndex
/// where unscored) of the shape the model's logits have without the vocabulary axis.
struct Batch {
  torch::Tensor inputs;
  torch::Tensor targets;
};

/// Where training batches come from; deterministic given its seed. Rank-local.
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual Batch next() = 0;
};

struct EvalMetrics {
  double loss = 0;            ///< mean cross-entropy per scored token
  double accuracy = 0;        ///< macro accuracy (MAD's metric)
  double micro_accuracy = 0;  ///< fraction of scored tokens predicted right
  double perplexity = 0;      ///< mean over batches of exp(batch loss) (MAD's checkpoint criterion)
};

/// Evaluates the model (in eval mode, without gradients) on held-out data.
using Evaluator = std::function<EvalMetrics(model::HybridModel&)>;

enum class RunStatus {
  Completed,      ///< ran every step
  ReachedTarget,  ///< stopped early: evaluation accuracy reached the target
  Diverged,       ///< loss or gradient became NaN/inf
  TimedOut,       ///< the wall-clock budget ran out
  Stopped,        ///< asked to stop from outside (signal)
  OutOfMemory,    ///< the allocator failed
};
const char* run_status_name(RunStatus status);
/// The status named `name` (as run_status_name writes it); throws InputError otherwise.
RunStatus parse_run_status(const std::string& name);

struct TrainerOptions {
  LrSchedule schedule;  ///< schedule.total_steps is the number of steps
  double beta1 = 0.9;
  double beta2 = 0.999;
  double adam_eps = 1e-8;
  double weight_decay = 0.0;
  bool decay_norms_and_biases = false;  ///< MAD-lab decays every parameter; Llama recipes do not
  double grad_clip = 1.0;               ///< max global gradient norm; 0 disables clipping
  int64_t micro_batches = 1;            ///< gradient accumulation: each batch is split into this many
  int64_t eval_every = 0;               ///< steps between evaluations (0: only at the end)
  double target_accuracy = 0;           ///< stop when evaluation accuracy >= this (0: never)
  double max_seconds = 0;               ///< wall-clock budget (0: none)
  int64_t log_every = 0;                ///< steps between progress lines (0: silent)
  double train_flops_per_token = 0;     ///< for throughput and MFU (about 3x forward)
  double peak_flops = 0;                ///< device peak FLOP/s for MFU (0: MFU not shown)
  std::string label;                    ///< prefix of progress lines
};

/// The run-time objects one training run works with (not configuration: built by the job,
/// never read from a file).
struct TrainingContext {
  /// Data parallelism: the team this rank trains with (nullptr: alone). Each team rank
  /// draws the same global batch, trains on its own slice of rows, and the gradients are
  /// summed over the team; stop and time-out decisions and evaluation results are agreed
  /// over the team, so its ranks always take the same path.
  dist::GradientReducer* reducer = nullptr;
  std::function<bool()> should_stop;   ///< polled at every step boundary (a stop signal, a coordinator)
  torch::Device device = torch::kCPU;  ///< where the evaluators build the model (batches follow it)
};

/// How every model of an evaluation is built and trained, whichever its objective (MAD
/// tasks or token data): the one copy of these settings.
struct TrainingRecipe {
  model::Kernels kernels = model::Kernels::Fused;
  model::InitScheme init = model::InitScheme::Mad;
  uint64_t init_seed = 0;  ///< model initialisation and data order
  TrainerOptions trainer;  ///< betas, clipping, schedule kind, warm-up, min lr, logging
};

struct CurvePoint {
  int64_t step;
  double loss;
  double lr;
  double grad_norm;
};

struct EvalPoint {
  int64_t step;
  EvalMetrics metrics;
};

struct TrainResult {
  RunStatus status = RunStatus::Completed;
  int64_t steps = 0;   ///< optimisation steps taken
  int64_t tokens = 0;  ///< input tokens processed
  double seconds = 0;
  std::vector<CurvePoint> curve;  ///< training loss at every step
  std::vector<EvalPoint> evals;
  /// The evaluation with the lowest perplexity (MAD reports that checkpoint); step -1 if none.
  EvalPoint best{-1, {}};
};

/// Trains `model` in place. Rank-local without a reducer; with one, collective over the
/// context's reducer's team (every team rank calls it with the same model, data and options).
/// Throws only for programming or I/O errors.
TrainResult train_model(model::HybridModel& model, BatchSource& data, const Evaluator& evaluate,
                        const TrainerOptions& options, const TrainingContext& context = {});

/// Whether `e` is an allocation failure (std::bad_alloc, LibTorch's CPU or CUDA
/// out-of-memory error), which is reported as such, never as the library's message.
bool is_out_of_memory(const std::exception& e);

/// Cross-entropy of logits [..., V] against targets [...] summed over scored tokens.
torch::Tensor summed_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace hnas::train
