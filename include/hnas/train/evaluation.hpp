// SPDX-License-Identifier: Apache-2.0
// What one evaluation of an architecture is: its objective (the MAD tasks or a token
// dataset), that objective's options, the width every layer shares, and the recipe every
// model is built and trained with. `hnas evaluate` runs one; a search runs one per
// candidate and fidelity.
#pragma once

#include "hnas/arch/model_shape.hpp"
#include "hnas/train/mad_evaluation.hpp"
#include "hnas/train/memory_estimate.hpp"
#include "hnas/train/token_evaluation.hpp"

namespace hnas::train {

enum class Objective {
  Mad,     ///< mean accuracy over the MAD tasks (higher is better)
  Tokens,  ///< -validation loss on token shards
};
const char* objective_name(Objective objective);

struct EvaluationOptions {
  Objective objective = Objective::Mad;
  arch::ModelShape shape;  ///< vocabulary and lengths are set per task/dataset
  TrainingRecipe recipe;
  MadEvaluationOptions mad;       ///< objective Mad only
  TokenEvaluationOptions tokens;  ///< objective Tokens only
  bool on_gpu = false;            ///< models train on CUDA (the job chooses the device)
};

/// The memory one of `team_size` ranks needs to train `genome` under `options` (the
/// largest MAD setting, or the token run): rows per rank = the batch split over the
/// team, then over train.micro_batches. Pure.
MemoryEstimate estimate_evaluation_memory(const arch::Genome& genome, const EvaluationOptions& options, int team_size);

/// Throws ConfigError with the numbers and the key to change when that estimate exceeds
/// the memory this rank may use (available_memory_bytes() shared by `ranks_on_node`
/// ranks). CPU training only: on a GPU the device's memory decides, and the allocator's
/// failure is reported as out of memory. Rank-local.
void check_memory_fits(const arch::Genome& genome, const EvaluationOptions& options, int team_size, int ranks_on_node);

/// "AAMM (d_model 128, 16 heads) on 64 rows of 128 tokens per rank": for out-of-memory
/// messages. Pure.
std::string describe_training_shape(const arch::Genome& genome, const EvaluationOptions& options, int team_size);

}  // namespace hnas::train
