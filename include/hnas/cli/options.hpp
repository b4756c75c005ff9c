// SPDX-License-Identifier: Apache-2.0
// Command line and INI configuration -> typed option structs. The INI file is the
// interface ([section] key = value); any key can be overridden on the command line as
// --section.key=value. Unknown keys and out-of-range values are rejected with the key
// named. Nothing outside cli/ sees Boost.ProgramOptions.
#pragma once

#include <string>
#include <vector>

#include "hnas/arch/genome.hpp"
#include "hnas/arch/model_shape.hpp"
#include "hnas/model/hybrid_model.hpp"
#include "hnas/search/strategy.hpp"
#include "hnas/train/mad_evaluation.hpp"
#include "hnas/train/token_evaluation.hpp"

namespace hnas::cli {

enum class Command { Help, Version, Evaluate, Search };

/// What `hnas evaluate` runs: one architecture on MAD tasks or on a token dataset.
struct EvaluateOptions {
  arch::Genome genome;
  arch::ModelShape shape;  ///< vocabulary and lengths are set per task/dataset
  model::Kernels kernels = model::Kernels::Fused;
  model::InitScheme init = model::InitScheme::Mad;
  bool on_tokens = false;  ///< --data given: token dataset instead of MAD
  train::MadEvaluationOptions mad;
  train::TokenEvaluationOptions tokens;
  int threads = 0;            ///< intra-op threads (0: SLURM_CPUS_PER_TASK or all cores)
  bool on_gpu = false;        ///< run.device = cuda: models train on CUDA (search: one GPU per rank)
  bool dry_run = false;       ///< validate and print the plan, train nothing
  std::string effective_ini;  ///< every key with its effective value, re-loadable
};

/// What `hnas search` runs: a strategy over a space of architectures, each candidate
/// evaluated as `hnas evaluate` would (the [model] [train] [mad] [tokens] keys), by teams
/// of ranks, with results in run_dir/results.h5.
struct SearchOptions {
  EvaluateOptions evaluation;  ///< genome unset: the strategy chooses it
  search::StrategyOptions strategy;
  int64_t ranks_per_candidate = 1;  ///< team size G; the world size must be a multiple
  std::string run_dir;              ///< required (--run-dir); created if missing
  /// Most of the wall time results.h5 writes may take: writes are spaced so that the time
  /// spent writing stays below this fraction (the file is always rewritten at the end).
  double results_overhead = 0.005;
  double nccl_timeout = 600;  ///< seconds a NCCL collective may make no progress before the job aborts
  std::string diverge_arch;   ///< [debug] fault injection: this architecture diverges
  std::string fail_arch;      ///< [debug] fault injection: this architecture throws
  bool dry_run = false;
  std::string effective_ini;
};

struct Invocation {
  Command command = Command::Help;
  EvaluateOptions evaluate;
  SearchOptions search;
  std::string help;  ///< usage text for Command::Help
};

/// Parses argv (argv[1] is the command). Throws ConfigError with every problem found,
/// each naming its key, for unknown keys, bad values and unreadable config files.
/// Rank-local and deterministic: every rank parsing the same argv gets the same result.
Invocation parse_command_line(int argc, const char* const* argv);

/// Splits "a, b c" into {"a", "b", "c"} (commas and/or spaces).
std::vector<std::string> split_list(const std::string& text);

}  // namespace hnas::cli
