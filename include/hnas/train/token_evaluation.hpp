// SPDX-License-Identifier: Apache-2.0
// Scores an architecture by language-model validation loss on a token dataset (llm.c
// .bin shards or HDF5 token datasets): train for a fixed number of steps on windows
// sampled from the training split, evaluate on a fixed set of validation windows.
#pragma once

#include <string>
#include <vector>

#include "hnas/arch/genome.hpp"
#include "hnas/arch/model_shape.hpp"
#include "hnas/model/hybrid_model.hpp"
#include "hnas/train/trainer.hpp"

namespace hnas::train {

struct TokenEvaluationOptions {
  std::vector<std::string> train_paths;  ///< shards: path.bin, path.h5 or path.h5:/dataset
  std::vector<std::string> valid_paths;  ///< if empty, validation is split off the training shards
  double val_fraction = 0.1;             ///< with no valid_paths: last fraction of each shard's tokens
  int64_t vocab_size = 257;              ///< byte-level shards: 256 bytes + end-of-text
  int64_t seq_len = 256;
  int64_t batch_size = 16;
  int64_t steps = 200;
  int64_t eval_every = 50;
  int64_t val_windows = 64;  ///< fixed validation windows, the same for every candidate
  double lr = 1e-3;
  double weight_decay = 0.1;
  uint64_t data_seed = 1234;
};

struct TokenEvaluation {
  TrainResult result;
  double validation_loss = 0;  ///< at the last evaluation (NaN if diverged before one)
  double objective = 0;        ///< -validation_loss: higher is better
};

/// Trains `genome` at width `shape` (vocabulary from the options) and reports validation
/// loss. Rank-local, or collective over the context's team. Throws InputError for unreadable or inconsistent shards.
TokenEvaluation evaluate_tokens(const arch::Genome& genome, const arch::ModelShape& shape,
                                const TokenEvaluationOptions& options, const TrainingRecipe& recipe,
                                const TrainingContext& context = {});

}  // namespace hnas::train
