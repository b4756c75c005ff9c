// SPDX-License-Identifier: Apache-2.0
// What a pre-training job trains and by which arithmetic (internal to pretrain/): the
// models (from /extrapolate, or the explicit architectures at the [extrapolate] target),
// the plan (steps, accumulation, schedule) and the identity a checkpoint must match to be
// resumed. Rank-local unless said otherwise.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "hnas/dist/communicator.hpp"
#include "hnas/pretrain/checkpoint.hpp"
#include "hnas/pretrain/pretrain.hpp"

namespace hnas::pretrain {

inline std::string results_path(const PretrainJob& job) { return job.run_dir + "/results.h5"; }

/// The winner(s) and the baseline of /extrapolate in the run directory's results.h5, at
/// its target's width. Rank 0. Throws ConfigError when there is no /extrapolate.
std::vector<ModelSpec> extrapolated_models(const PretrainJob& job);
/// The explicit architectures (--arch) at the [extrapolate] target.
std::vector<ModelSpec> explicit_models(const PretrainOptions& o);
/// The models as bytes for a broadcast, and back.
std::string serialize(const std::vector<ModelSpec>& specs);
std::vector<ModelSpec> deserialize_specs(const std::string& bytes);

struct Plan {
  int64_t steps = 0;
  int64_t accumulation = 1;  // micro-batches per rank per step
  int64_t tokens_per_step = 0;
  train::LrSchedule schedule;
};

/// The plan at `team_size` ranks per model. Throws ConfigError naming the key for a global
/// batch not divisible by the ranks x micro-batch, or a budget below one global batch.
Plan make_plan(const PretrainOptions& o, int team_size);
/// The ranks per model: the world, or its share with pretrain.team_per_model. Throws
/// ConfigError when the world does not divide into one team per model.
int team_size_of(const PretrainOptions& o, const dist::Communicator& world, size_t models);
/// The same for a world of `ranks`.
int team_size_for(const PretrainOptions& o, int ranks, size_t models);

/// The peak FLOP/s of one rank, for the plan and the MFU, and where the figure comes from:
/// pretrain.peak_tflops; on the CPU a float32 sgemm measured now; on a GPU its data-sheet
/// bf16 peak if known, else a bf16 product measured on it; 0 for GPUs on a dry run without
/// one. Rank-local; call it once, before training.
double peak_flops_per_rank(const PretrainOptions& o, const PretrainJob& job, std::string& source);

/// Prints the plan of training `specs` (rank 0's log): per model its parameters, steps,
/// FLOPs, the time at the peak and pretrain.plan_mfu, its memory per rank with and
/// without ZeRO-1, and its checkpoint's size and write time; then the whole job's time.
/// Throws ConfigError when a model would not fit a rank's memory (pretrain.device_memory_gb,
/// the GPU's, or the node's available memory over its ranks), naming the keys to change.
/// `peak_flops` per rank and where it came from are peak_flops_per_rank's (0: no time
/// estimate). Rank-local (every rank computes the same); call it inside agree_on_errors.
void report_plan(const PretrainOptions& o, const PretrainJob& job, const std::vector<ModelSpec>& specs,
                 double peak_flops, const std::string& peak_source);

/// What a checkpoint must match to be resumed, key by key (the key is named in the refusal).
std::map<std::string, std::string> identity_of(const ModelSpec& spec, const PretrainOptions& o, const Plan& plan,
                                               const std::string& data_fingerprint);
std::string fingerprint_of(const std::map<std::string, std::string>& identity);
/// Throws ConfigError naming the first key of `identity` that `c` was written with
/// another value of; `where` names the checkpoint.
void check_identity(const Checkpoint& c, const std::map<std::string, std::string>& identity, const std::string& where);

}  // namespace hnas::pretrain
