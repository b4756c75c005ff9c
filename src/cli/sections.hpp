// SPDX-License-Identifier: Apache-2.0
// The configuration by section (internal to cli/): one declare_* per INI section binds
// its keys to the fields they set, and the check_* beside it resolves and cross-checks
// them after parsing. Every problem names its key.
#pragma once

#include <string>
#include <vector>

#include "hnas/aggregate/aggregate_stage.hpp"
#include "hnas/extrapolate/extrapolate_stage.hpp"
#include "hnas/generate/generate.hpp"
#include "hnas/pipeline/run_context.hpp"
#include "hnas/search/search_job.hpp"
#include "hnas/train/evaluation.hpp"
#include "option_table.hpp"

namespace hnas::cli {

enum class InitChoice { Auto, Llama, Mad };
enum class DeviceChoice { Cpu, Cuda };

/// Every field one command's keys fill, and the raw values resolved by the checks.
struct Settings {
  Command command = Command::Evaluate;
  std::string arch;
  std::vector<std::string> tasks{"in-context-recall"};
  std::vector<std::string> data, valid;
  InitChoice init = InitChoice::Auto;
  std::string grad_clip = "auto";
  bool all_settings = false;
  DeviceChoice device = DeviceChoice::Cpu;
  std::string primitives = "AM", first, last;
  arch::Genome genome;
  pipeline::JobOptions job;
  train::EvaluationOptions evaluation;
  search::SearchOptions search;  ///< its evaluation is filled from `evaluation` at the end
  aggregate::AggregateOptions aggregate;
  std::string aggregate_context = "0";  ///< c of N_c, or "all"
  extrapolate::ExtrapolateOptions extrapolate;
  /// [extrapolate] target fields as given; 0 (or auto) takes the preset's.
  struct TargetFields {
    std::string name = "1B";
    int64_t blocks = 0, d_model = 0, mlp_hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab_size = 0;
    int64_t context_length = 0;
    double rope_theta = 0;
    std::string tie_embeddings = "auto";
  } target;
  pretrain::PretrainOptions pretrain;
  std::vector<std::string> pretrain_archs;
  generate::GenerateOptions generate;
  std::vector<std::string> prompt_tokens;
};

/// Defaults that differ from the structs' own: MAD-lab's biases for the MAD objective.
Settings default_settings(Command command);

void declare_top_level(OptionTable& table, Settings& s);
void declare_model(OptionTable& table, Settings& s);
void declare_train(OptionTable& table, Settings& s);
void declare_mad(OptionTable& table, Settings& s);
void declare_tokens(OptionTable& table, Settings& s);
void declare_run(OptionTable& table, Settings& s);
void declare_search(OptionTable& table, Settings& s);
void declare_debug(OptionTable& table, Settings& s);
void declare_aggregate(OptionTable& table, Settings& s);
void declare_extrapolate(OptionTable& table, Settings& s);
void declare_target(OptionTable& table, Settings& s);
void declare_pretrain(OptionTable& table, Settings& s);
void declare_generate(OptionTable& table, Settings& s);

void check_top_level(Settings& s, Problems& problems);
void check_model(Settings& s, Problems& problems);
void check_train(Settings& s, Problems& problems);
void check_mad(Settings& s, Problems& problems);
void check_tokens(Settings& s, Problems& problems);
void check_run(Settings& s, Problems& problems);
void check_search(Settings& s, Problems& problems);
void check_aggregate(Settings& s, Problems& problems);
void check_extrapolate(Settings& s, Problems& problems);
void check_pretrain(Settings& s, Problems& problems);
void check_generate(Settings& s, Problems& problems);

}  // namespace hnas::cli
