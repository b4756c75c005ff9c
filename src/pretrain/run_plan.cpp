// SPDX-License-Identifier: Apache-2.0
#include "run_plan.hpp"

#include <algorithm>
#include <filesystem>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/hash.hpp"
#include "hnas/core/log.hpp"
#include "hnas/data/shard_inputs.hpp"
#include "hnas/io/h5.hpp"
#include "hnas/io/results_table.hpp"

namespace hnas::pretrain {

namespace fs = std::filesystem;

namespace {

arch::ModelShape shape_of(const extrapolate::TargetShape& target) {
  auto shape = target.shape;
  shape.backbone = arch::Backbone::LanguageModel;
  shape.attention_bias = false;
  shape.head_bias = false;
  return shape;
}

}  // namespace

// The winner(s) and the baseline of /extrapolate, at its target's width. Rank 0.
std::vector<ModelSpec> extrapolated_models(const PretrainJob& job) {
  const std::string path = results_path(job);
  std::error_code missing;
  HNAS_CHECK(fs::exists(path, missing), ConfigError,
             "nothing to pre-train in " << job.run_dir << " (" << path
                                        << " does not exist); run hnas extrapolate there first, or give --arch");
  const auto file = io::open_file_read_only(path);
  HNAS_CHECK(H5Lexists(file.get(), "extrapolate", H5P_DEFAULT) > 0, ConfigError,
             path << " has no /extrapolate; run hnas extrapolate --run-dir " << job.run_dir
                  << " first, or give the architectures with --arch");
  const auto models = io::read_table(file.get(), "/extrapolate/models");
  const auto targets = io::read_table(file.get(), "/extrapolate/target");
  HNAS_CHECK(targets.rows.size() == 1, InputError, path << ": /extrapolate/target must have one row");
  std::map<std::string, io::Cell> t;
  for (size_t c = 0; c < targets.columns.size(); ++c) t[targets.columns[c].name] = targets.rows[0][c];
  const auto integer = [&](const char* name) { return std::get<int64_t>(t.at(name)); };
  extrapolate::TargetShape target;
  target.name = std::get<std::string>(t.at("name"));
  target.blocks = integer("blocks");
  target.shape.d_model = integer("d_model");
  target.shape.mlp_hidden = integer("mlp_hidden");
  target.shape.num_heads = integer("heads");
  target.shape.num_kv_heads = integer("kv_heads");
  target.shape.head_dim = integer("head_dim");
  target.shape.vocab_size = integer("vocab_size");
  target.shape.rope_theta = std::get<double>(t.at("rope_theta"));
  target.shape.tie_embeddings = integer("tie_embeddings") != 0;
  target.shape.norm_eps = std::get<double>(t.at("norm_eps"));
  target.context_length = integer("context_length");
  std::vector<ModelSpec> specs;
  for (const auto& row : models.rows)
    specs.push_back(
        {std::get<std::string>(row[0]), arch::Genome::parse(std::get<std::string>(row[1])), shape_of(target)});
  return specs;
}

std::vector<ModelSpec> explicit_models(const PretrainOptions& o) {
  std::vector<ModelSpec> specs;
  for (const auto& genome : o.archs) specs.push_back({genome.to_string(), genome, shape_of(o.target)});
  return specs;
}

std::string serialize(const std::vector<ModelSpec>& specs) {
  dist::MessageWriter w;
  w.put<uint64_t>(specs.size());
  for (const auto& s : specs) w.put_string(s.name).put_string(s.genome.to_string()).put(s.shape);
  return w.bytes();
}

std::vector<ModelSpec> deserialize_specs(const std::string& bytes) {
  dist::MessageReader r(bytes);
  std::vector<ModelSpec> specs(r.get<uint64_t>());
  for (auto& s : specs) {
    s.name = r.get_string();
    s.genome = arch::Genome::parse(r.get_string());
    s.shape = r.get<arch::ModelShape>();
  }
  return specs;
}

// `team_size`: the ranks that train one model together.
Plan make_plan(const PretrainOptions& o, int team_size) {
  Plan p;
  const int64_t per_rank = o.micro_batch * team_size;
  HNAS_CHECK(o.global_batch % per_rank == 0, ConfigError,
             "pretrain.global_batch = " << o.global_batch << " is not divisible by the " << team_size
                                        << (o.team_per_model ? " ranks of a team" : " ranks")
                                        << " x pretrain.micro_batch = " << o.micro_batch << " (" << per_rank
                                        << "); choose a multiple of " << per_rank);
  p.accumulation = o.global_batch / per_rank;
  p.tokens_per_step = o.global_batch * o.seq_len;
  p.steps = o.tokens / p.tokens_per_step;
  HNAS_CHECK(p.steps >= 1, ConfigError,
             "pretrain.tokens = " << o.tokens << " is smaller than one global batch (pretrain.global_batch x "
                                  << "pretrain.seq_len = " << p.tokens_per_step << " tokens)");
  p.schedule = o.schedule;
  p.schedule.total_steps = p.steps;
  p.schedule.warmup_steps = std::llround(o.warmup_fraction * static_cast<double>(p.steps));
  return p;
}

// What a checkpoint must match to be resumed, key by key (the key named in the refusal).
std::map<std::string, std::string> identity_of(const ModelSpec& spec, const PretrainOptions& o, const Plan& plan,
                                               const std::string& data_fingerprint) {
  const auto& s = spec.shape;
  const auto& k = plan.schedule;
  return {
      {"model.arch", spec.genome.to_string()},
      {"model.shape", s.describe() + log::format(" rope %.10g eps %.3g", s.rope_theta, s.norm_eps)},
      {"pretrain.tokens", log::format("%ld steps", static_cast<long>(plan.steps))},
      {"pretrain.global_batch", std::to_string(o.global_batch)},
      {"pretrain.seq_len", std::to_string(o.seq_len)},
      {"pretrain.schedule",
       log::format("%s peak %.10g min %.10g warmup %ld decay %.10g shape %d", train::schedule_name(k.kind), k.peak_lr,
                   k.min_lr, static_cast<long>(k.warmup_steps), k.decay_fraction, static_cast<int>(k.decay_shape))},
      {"pretrain.optimizer", log::format("wd %.10g betas %.10g %.10g eps %.3g clip %.10g", o.weight_decay, o.beta1,
                                         o.beta2, o.adam_eps, o.grad_clip)},
      {"pretrain.seed", std::to_string(o.seed)},
      {"data", data_fingerprint},
  };
}

std::string fingerprint_of(const std::map<std::string, std::string>& identity) {
  std::string text;
  for (const auto& [key, value] : identity) text += key + "=" + value + "\n";
  return hex_fingerprint(text);
}

void check_identity(const Checkpoint& c, const std::map<std::string, std::string>& identity, const std::string& where) {
  // The keys a user sets come before the ones derived from them (the warm-up from tokens).
  std::vector<std::pair<std::string, std::string>> ordered;
  for (const char* key : {"model.arch", "model.shape", "pretrain.tokens", "pretrain.global_batch", "pretrain.seq_len",
                          "data", "pretrain.seed"})
    if (identity.count(key)) ordered.emplace_back(key, identity.at(key));
  for (const auto& entry : identity)
    if (std::find_if(ordered.begin(), ordered.end(), [&](const auto& e) { return e.first == entry.first; }) ==
        ordered.end())
      ordered.push_back(entry);
  for (const auto& [key, value] : ordered) {
    const auto it = c.identity.find(key);
    const std::string recorded = it == c.identity.end() ? "(none)" : it->second;
    if (recorded == value) continue;
    const std::string what = key == "data"
                                 ? "the training data (" + data::describe_fingerprint_change(recorded, value) + ")"
                                 : key + " (checkpoint: " + recorded + ", this run: " + value + ")";
    throw ConfigError(where + " was written with another " + what +
                      "; rerun with the same configuration to resume, or use a new --run-dir");
  }
}

// The ranks per model: the world, or its share when every model has its own team.
int team_size_of(const PretrainOptions& o, const dist::Communicator& world, size_t models) {
  return team_size_for(o, world.size(), models);
}

int team_size_for(const PretrainOptions& o, int ranks, size_t models) {
  if (!o.team_per_model) return ranks;
  HNAS_CHECK(models > 0 && ranks % static_cast<int>(models) == 0, ConfigError,
             "pretrain.team_per_model = true needs a number of ranks divisible by the "
                 << models << " models; this job has " << ranks);
  return ranks / static_cast<int>(models);
}

}  // namespace hnas::pretrain
