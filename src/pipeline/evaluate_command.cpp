// SPDX-License-Identifier: Apache-2.0
#include "hnas/pipeline/evaluate_command.hpp"

#include <torch/torch.h>

#include <cstdlib>
#include <sstream>
#include <thread>

#include "hnas/core/check.hpp"
#include "hnas/core/log.hpp"
#include "hnas/data/token_dataset.hpp"
#include "hnas/train/throughput.hpp"

namespace hnas::pipeline {
namespace {

void print_plan(const cli::EvaluateOptions& o) {
  const auto params = arch::count_parameters(o.genome, o.shape);
  log::info(log::format("hnas evaluate: arch %s (%s), %zu layers, %s", o.genome.to_string().c_str(),
                        o.genome.to_run_length().c_str(), o.genome.size(), o.shape.describe().c_str()));
  log::info(log::format("threads %d, kernels %s, parameters %ld (non-embedding %ld at vocab %ld)",
                        at::get_num_threads(), o.kernels == model::Kernels::Fused ? "fused" : "reference",
                        static_cast<long>(params.total), static_cast<long>(params.non_embedding),
                        static_cast<long>(o.shape.vocab_size)));
  std::istringstream config(o.effective_ini);
  log::info("effective configuration:");
  for (std::string line; std::getline(config, line);)
    if (!line.empty()) log::info("  " + line);
}

int run_mad(const cli::EvaluateOptions& o) {
  auto options = o.mad;
  for (const auto& s : train::selected_settings(options))
    log::info(log::format("setting %s: %ld train / %ld test rows of %ld tokens, %zu grid runs", s.label().c_str(),
                          static_cast<long>(s.num_train), static_cast<long>(s.num_test),
                          static_cast<long>(s.input_length()),
                          options.learning_rates.size() * options.weight_decays.size()));
  if (o.dry_run) return 0;
  options.trainer.peak_flops = train::measure_cpu_sgemm_flops();
  const auto result = train::evaluate_mad(o.genome, o.shape, options);
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
  return 0;
}

int run_tokens(const cli::EvaluateOptions& o) {
  if (o.dry_run) {  // open and validate every shard, train nothing
    std::vector<std::string> specs = o.tokens.train_paths;
    specs.insert(specs.end(), o.tokens.valid_paths.begin(), o.tokens.valid_paths.end());
    const data::TokenDataset dataset(specs, o.tokens.vocab_size);
    log::info(log::format("dry run: %zu shards, %ld tokens, all below vocab_size %ld", dataset.num_shards(),
                          static_cast<long>(dataset.num_tokens()), static_cast<long>(o.tokens.vocab_size)));
    return 0;
  }
  auto options = o.tokens;
  options.trainer.peak_flops = train::measure_cpu_sgemm_flops();
  const auto result = train::evaluate_tokens(o.genome, o.shape, options);
  log::info(log::format("result validation loss %.4f | objective %.4f | %s after %ld steps, %ld tokens, %.1fs",
                        result.validation_loss, result.objective, train::run_status_name(result.result.status),
                        static_cast<long>(result.result.steps), static_cast<long>(result.result.tokens),
                        result.result.seconds));
  return 0;
}

}  // namespace

int resolve_threads(int requested) {
  if (requested > 0) return requested;
  if (const char* slurm = std::getenv("SLURM_CPUS_PER_TASK")) {
    const int n = std::atoi(slurm);
    if (n > 0) return n;
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

int run_evaluate(const cli::EvaluateOptions& options) {
  train::set_compute_threads(resolve_threads(options.threads));
  auto o = options;
  if (o.on_gpu) {
    HNAS_CHECK(torch::cuda::is_available(), ConfigError,
               "run.device = cuda, but LibTorch sees no CUDA device (a CPU build of LibTorch, or no GPU here)");
    o.mad.trainer.device = o.tokens.trainer.device = torch::Device(torch::kCUDA, 0);
  }
  print_plan(o);
  return o.on_tokens ? run_tokens(o) : run_mad(o);
}

}  // namespace hnas::pipeline
