// SPDX-License-Identifier: Apache-2.0
#include "hnas/search/candidate_evaluation.hpp"

#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include "hnas/core/error.hpp"
#include "hnas/core/log.hpp"
#include "hnas/dist/gradient_reducer.hpp"

namespace hnas::search {
namespace {

double unix_now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

int64_t scaled(int64_t full, double fidelity) {
  return std::max<int64_t>(1, std::llround(static_cast<double>(full) * fidelity));
}

void add_curve(CandidateResult& result, const std::vector<train::CurvePoint>& curve) {
  const auto run = static_cast<int32_t>(result.runs.size() - 1);
  for (const auto& p : curve) result.curve.push_back({run, p.step, p.loss});
}

void evaluate_on_mad(const train::EvaluationOptions& base, const arch::Genome& genome, double fidelity,
                     const train::TrainingContext& context, bool diverge, CandidateResult& result) {
  auto options = base.mad;
  options.epochs = scaled(options.epochs, fidelity);
  if (diverge) options.learning_rates.assign(options.learning_rates.size(), 1e30);
  const auto evaluation = train::evaluate_mad(genome, base.shape, options, base.recipe, context);

  bool stopped = false, all_diverged = true, out_of_memory = false;
  int diverged = 0, total = 0;
  for (const auto& setting : evaluation.settings) {
    for (const auto& run : setting.runs) {
      result.runs.push_back({setting.setting.label() + log::format(" lr=%g wd=%g", run.lr, run.weight_decay), run.lr,
                             run.weight_decay, run.status, run.steps, run.best.accuracy, run.best.loss, run.seconds});
      add_curve(result, run.curve);
      result.steps += run.steps;
      result.tokens += run.steps * options.batch_size * setting.setting.input_length();
      stopped |= run.status == train::RunStatus::Stopped;
      all_diverged &= run.status == train::RunStatus::Diverged;
      diverged += run.status == train::RunStatus::Diverged;
      out_of_memory |= run.status == train::RunStatus::OutOfMemory;
      ++total;
    }
  }
  for (const auto& task : evaluation.tasks) result.task_scores.push_back(task.score);
  result.objective = evaluation.objective;
  result.status = stopped         ? CandidateStatus::Stopped
                  : out_of_memory ? CandidateStatus::OutOfMemory
                  : all_diverged  ? CandidateStatus::Diverged
                                  : CandidateStatus::Completed;
  result.valid = !stopped && !out_of_memory && !all_diverged && std::isfinite(result.objective);
  if (diverged > 0 && !all_diverged) result.error = log::format("%d of %d training runs diverged", diverged, total);

  const auto settings = train::selected_settings(options);
  auto shape = base.shape;
  shape.vocab_size = settings.front().vocab_size;
  const auto parameters = arch::count_parameters(genome, shape);
  result.parameters = parameters.total;
  result.non_embedding_parameters = parameters.non_embedding;
  result.flops_per_token = arch::forward_flops_per_token(genome, shape, settings.front().input_length());
}

void evaluate_on_tokens(const train::EvaluationOptions& base, const arch::Genome& genome, double fidelity,
                        const train::TrainingContext& context, bool diverge, CandidateResult& result) {
  auto options = base.tokens;
  options.steps = scaled(options.steps, fidelity);
  if (options.eval_every > options.steps) options.eval_every = 0;
  if (diverge) options.lr = 1e30;
  const auto evaluation = train::evaluate_tokens(genome, base.shape, options, base.recipe, context);
  const auto& run = evaluation.result;
  result.runs.push_back(
      {"tokens", options.lr, options.weight_decay, run.status, run.steps, 0, evaluation.validation_loss, run.seconds});
  add_curve(result, run.curve);
  result.steps = run.steps;
  result.tokens = run.tokens;
  result.validation_loss = evaluation.validation_loss;
  result.objective = evaluation.objective;
  result.status = candidate_status_of(run.status);
  result.valid = run.status != train::RunStatus::Stopped && run.status != train::RunStatus::Diverged &&
                 run.status != train::RunStatus::OutOfMemory && std::isfinite(result.objective);

  auto shape = base.shape;
  shape.vocab_size = options.vocab_size;
  const auto parameters = arch::count_parameters(genome, shape);
  result.parameters = parameters.total;
  result.non_embedding_parameters = parameters.non_embedding;
  result.flops_per_token = arch::forward_flops_per_token(genome, shape, options.seq_len);
}

}  // namespace

std::vector<std::string> objective_task_names(const train::EvaluationOptions& base) {
  std::vector<std::string> names;
  if (base.objective == train::Objective::Mad)
    for (const auto task : base.mad.tasks) names.push_back(data::task_name(task));
  return names;
}

double estimate_evaluation_seconds(const train::EvaluationOptions& base, int64_t num_layers, double flops_per_second) {
  if (flops_per_second <= 0) return 0;
  return estimate_evaluation_flops(base, num_layers) / flops_per_second;
}

double estimate_evaluation_flops(const train::EvaluationOptions& base, int64_t num_layers) {
  std::vector<arch::Primitive> layers(static_cast<size_t>(num_layers), arch::Primitive::Mlp);
  for (size_t i = 0; i < layers.size(); i += 2) layers[i] = arch::Primitive::Attention;
  const arch::Genome genome(layers);
  auto shape = base.shape;
  double flops = 0;
  if (base.objective == train::Objective::Tokens) {
    shape.vocab_size = base.tokens.vocab_size;
    flops = 3 * arch::forward_flops_per_token(genome, shape, base.tokens.seq_len) *
            static_cast<double>(base.tokens.steps * base.tokens.batch_size * base.tokens.seq_len);
  } else {
    const double grid = static_cast<double>(base.mad.learning_rates.size() * base.mad.weight_decays.size());
    for (const auto& s : train::selected_settings(base.mad)) {
      shape.vocab_size = s.vocab_size;
      flops += grid * 3 * arch::forward_flops_per_token(genome, shape, s.input_length()) *
               static_cast<double>(base.mad.epochs * s.num_train * s.input_length());
    }
  }
  return flops;
}

CandidateResult evaluate_candidate(const train::EvaluationOptions& base, const EvaluationRequest& request,
                                   const train::TrainingContext& context, const FaultInjection& faults) {
  CandidateResult result;
  result.candidate_id = request.candidate_id;
  result.arch = request.proposal.genome.to_string();
  result.rung = request.proposal.rung;
  result.stage = request.proposal.stage;
  result.fidelity = request.fidelity;
  result.team = request.team;
  result.started_unix = unix_now();
  const auto start = std::chrono::steady_clock::now();

  const bool diverge = !faults.diverge_arch.empty() && faults.diverge_arch == result.arch;
  try {
    if (!faults.fail_arch.empty() && faults.fail_arch == result.arch)
      throw InternalError("fault injected by debug.fail_arch");
    if (base.objective == train::Objective::Tokens)
      evaluate_on_tokens(base, request.proposal.genome, request.fidelity, context, diverge, result);
    else
      evaluate_on_mad(base, request.proposal.genome, request.fidelity, context, diverge, result);
  } catch (const std::exception& e) {
    // A candidate that throws is recorded and the search goes on. In a team of several
    // ranks only hnas's own checks are recorded: they fail alike on every rank. Anything
    // else (a LibTorch error, out of memory) may have hit this rank alone while its peers
    // wait in a collective, so it ends the job (main aborts) rather than hang it, and so
    // does a FatalError anywhere.
    const auto* team = context.reducer;
    if (team != nullptr && team->size() > 1 && dynamic_cast<const Error*>(&e) == nullptr) throw;
    if (dynamic_cast<const FatalError*>(&e) != nullptr) throw;  // e.g. a broken NCCL communicator
    result.valid = false;
    result.objective = NAN;
    if (train::is_out_of_memory(e)) {  // one line with the shape, never the allocator's trace
      result.status = CandidateStatus::OutOfMemory;
      result.error = "out of memory training " +
                     train::describe_training_shape(request.proposal.genome, base, team != nullptr ? team->size() : 1);
    } else {
      result.status = CandidateStatus::Failed;
      result.error = e.what();
    }
  }
  if (result.status == CandidateStatus::OutOfMemory) {
    const int team_size = context.reducer != nullptr ? context.reducer->size() : 1;
    if (result.error.empty())
      result.error =
          "out of memory training " + train::describe_training_shape(request.proposal.genome, base, team_size);
    log::warn("candidate " + std::to_string(result.candidate_id) + ": " + result.error);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.finished_unix = unix_now();
  return result;
}

}  // namespace hnas::search
