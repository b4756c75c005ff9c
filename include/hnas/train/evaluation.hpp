// SPDX-License-Identifier: Apache-2.0
// What one evaluation of an architecture is: its objective (the MAD tasks or a token
// dataset), that objective's options, the width every layer shares, and the recipe every
// model is built and trained with. `hnas evaluate` runs one; a search runs one per
// candidate and fidelity.
#pragma once

#include "hnas/arch/model_shape.hpp"
#include "hnas/train/mad_evaluation.hpp"
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
  MadEvaluationOptions mad;        ///< objective Mad only
  TokenEvaluationOptions tokens;   ///< objective Tokens only
  bool on_gpu = false;             ///< models train on CUDA (the job chooses the device)
};

}  // namespace hnas::train
