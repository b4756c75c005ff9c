// SPDX-License-Identifier: Apache-2.0
// `hnas evaluate`: one architecture trained on the job's ranks (data-parallel when there
// are several: every rank draws the same global batch and trains its share of the rows)
// and its metrics printed by rank 0.
#include <torch/torch.h>

#include <sstream>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/log.hpp"
#include "hnas/core/signals.hpp"
#include "hnas/data/shard_inputs.hpp"
#include "hnas/data/token_dataset.hpp"
#include "hnas/dist/gradient_reducer.hpp"
#include "hnas/pipeline/stage.hpp"
#include "hnas/train/throughput.hpp"

namespace hnas::pipeline {
namespace {

// Internal marker: a training run ran out of memory (reported as a configuration error).
constexpr int kExitOutOfMemory = -1;

void print_plan(const EvaluateOptions& o, const RunContext& context) {
  const auto& e = o.evaluation;
  auto shape = e.shape;
  if (e.objective == train::Objective::Tokens)
    shape.vocab_size = e.tokens.vocab_size;
  else
    shape.vocab_size = train::selected_settings(e.mad).front().vocab_size;
  const auto params = arch::count_parameters(o.genome, shape);
  log::info(log::format("hnas evaluate: arch %s (%s), %zu layers, %s", o.genome.to_string().c_str(),
                        o.genome.to_run_length().c_str(), o.genome.size(), e.shape.describe().c_str()));
  log::info(log::format(
      "%d ranks, %d threads per rank, kernels %s, parameters %ld (non-embedding %ld at vocab %ld)",
      context.world().size(), at::get_num_threads(), e.recipe.kernels == model::Kernels::Fused ? "fused" : "reference",
      static_cast<long>(params.total), static_cast<long>(params.non_embedding), static_cast<long>(shape.vocab_size)));
  std::istringstream config(context.options().effective_ini);
  log::info("effective configuration:");
  for (std::string line; std::getline(config, line);)
    if (!line.empty()) log::info("  " + line);
}

int report_mad(const train::MadEvaluation& result) {
  for (const auto& s : result.settings) {
    const auto& run = s.runs[s.best_run];
    log::info(log::format("result %s | acc %.4f | micro acc %.4f | loss %.4f | lr %g wd %g | %s after %ld steps, %.1fs",
                          s.setting.label().c_str(), s.accuracy, run.best.micro_accuracy, run.best.loss, run.lr,
                          run.weight_decay, train::run_status_name(run.status), static_cast<long>(run.steps),
                          run.seconds));
  }
  for (const auto& t : result.tasks) log::info(log::format("task %s score %.4f", data::task_name(t.task), t.score));
  log::info(log::format("objective %.4f (mean over %zu tasks) in %.1fs%s", result.objective, result.tasks.size(),
                        result.seconds, result.any_diverged ? " (some runs diverged)" : ""));
  for (const auto& s : result.settings)
    for (const auto& run : s.runs)
      if (run.status == train::RunStatus::OutOfMemory) return kExitOutOfMemory;
  for (const auto& s : result.settings)
    for (const auto& run : s.runs)
      if (run.status == train::RunStatus::Stopped) return kExitResumable;
  return kExitOk;
}

int report_tokens(const train::TokenEvaluation& result) {
  log::info(log::format("result validation loss %.4f | objective %.4f | %s after %ld steps, %ld tokens, %.1fs",
                        result.validation_loss, result.objective, train::run_status_name(result.result.status),
                        static_cast<long>(result.result.steps), static_cast<long>(result.result.tokens),
                        result.result.seconds));
  if (result.result.status == train::RunStatus::OutOfMemory) return kExitOutOfMemory;
  return result.result.status == train::RunStatus::Stopped ? kExitResumable : kExitOk;
}

class EvaluateStage final : public Stage {
 public:
  explicit EvaluateStage(EvaluateOptions options) : options_(std::move(options)) {}
  const char* name() const override { return "evaluate"; }
  bool needs_run_dir() const override { return false; }
  bool complete(const RunContext&) const override { return false; }  // keeps nothing to resume

  int run(RunContext& context) override {
    const auto& world = context.world();
    const auto& e = options_.evaluation;
    const bool on_tokens = e.objective == train::Objective::Tokens;
    dist::agree_on_errors(world, [&] {
      const int64_t rows = on_tokens ? e.tokens.batch_size : e.mad.batch_size;
      HNAS_CHECK(rows >= world.size(), ConfigError,
                 (on_tokens ? "tokens.batch_size = " : "mad.batch_size = ")
                     << rows << " is smaller than the " << world.size()
                     << " ranks of this job, which split each batch's rows between them");
      train::check_memory_fits(options_.genome, e, world.size(), context.ranks_on_node());
      if (on_tokens) {  // open and validate every shard on every rank before any work
        const auto specs = data::all_shard_specs(e.tokens.train_paths, e.tokens.valid_paths);
        const data::TokenDataset dataset(specs, e.tokens.vocab_size);
        if (context.dry_run())
          log::info(log::format("dry run: %zu shards, %ld tokens, all below vocab_size %ld", dataset.num_shards(),
                                static_cast<long>(dataset.num_tokens()), static_cast<long>(e.tokens.vocab_size)));
      }
    });
    print_plan(options_, context);
    if (!on_tokens)
      for (const auto& s : train::selected_settings(e.mad))
        log::info(log::format("setting %s: %ld train / %ld test rows of %ld tokens, %zu grid runs", s.label().c_str(),
                              static_cast<long>(s.num_train), static_cast<long>(s.num_test),
                              static_cast<long>(s.input_length()),
                              e.mad.learning_rates.size() * e.mad.weight_decays.size()));
    if (context.dry_run()) return kExitOk;

    std::unique_ptr<dist::GradientReducer> reducer;
    train::TrainingContext training;
    training.should_stop = [] { return stop_requested(); };
    if (context.gpu() >= 0) {
      training.device = torch::Device(torch::kCUDA, context.gpu());
      if (world.size() > 1) reducer = dist::make_nccl_reducer(world, context.gpu(), context.options().nccl_timeout);
    } else if (world.size() > 1) {
      reducer = dist::make_mpi_reducer(world);
    }
    training.reducer = reducer.get();
    auto recipe = e.recipe;
    if (context.gpu() < 0) recipe.trainer.peak_flops = train::measure_cpu_sgemm_flops();
    const dist::ScopedStallTimeout timed(context.options().stall_timeout);
    int code = kExitOk;
    try {
      code = on_tokens ? report_tokens(train::evaluate_tokens(options_.genome, e.shape, e.tokens, recipe, training))
                       : report_mad(train::evaluate_mad(options_.genome, e.shape, e.mad, recipe, training));
    } catch (const std::exception& error) {
      if (!train::is_out_of_memory(error)) throw;
      code = kExitOutOfMemory;
    }
    if (code == kExitOutOfMemory)
      throw ConfigError("out of memory training " + train::describe_training_shape(options_.genome, e, world.size()) +
                        "; lower " + (on_tokens ? "tokens.batch_size" : "mad.batch_size") +
                        " (or raise train.micro_batches) or narrow the model");
    if (code == kExitResumable) log::info("evaluation stopped by a signal before it finished (exit code 75)");
    return code;
  }

 private:
  EvaluateOptions options_;
};

}  // namespace

std::unique_ptr<Stage> make_evaluate_stage(EvaluateOptions options) {
  return std::make_unique<EvaluateStage>(std::move(options));
}

}  // namespace hnas::pipeline
