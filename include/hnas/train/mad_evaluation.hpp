// SPDX-License-Identifier: Apache-2.0
// Scores an architecture on the MAD synthetic tasks: for each selected task setting and
// each (learning rate, weight decay) of the grid, train a fresh model, keep the
// lowest-perplexity evaluation, take the best run per setting; task score = mean over
// the task's settings; objective = mean over tasks (the MAD protocol). The subset, the
// training-set size and the epoch budget are configurable so that an evaluation takes
// seconds on a CPU and the full protocol on a GPU.
#pragma once

#include <vector>

#include "hnas/arch/genome.hpp"
#include "hnas/arch/model_shape.hpp"
#include "hnas/data/mad.hpp"
#include "hnas/model/ops.hpp"
#include "hnas/train/trainer.hpp"

namespace hnas::train {

struct MadEvaluationOptions {
  std::vector<data::MadTask> tasks = data::all_tasks();
  bool all_settings = false;  ///< the 66-setting benchmark; else each task's baseline only
  int64_t num_train = 0;      ///< training instances per setting (0: the setting's own)
  int64_t num_test = 1280;
  int64_t seq_len = 0;  ///< override of every setting's sequence length (0: keep)
  int64_t epochs = 200;
  int64_t batch_size = 128;
  std::vector<double> learning_rates{5e-4};
  std::vector<double> weight_decays{0.0};
  double target_accuracy = 0.999;
  uint64_t data_seed = 12345;  ///< MAD's seed for the generators
};

struct MadRun {
  double lr = 0;
  double weight_decay = 0;
  RunStatus status = RunStatus::Completed;
  int64_t steps = 0;
  double seconds = 0;
  EvalMetrics best;  ///< the lowest-perplexity evaluation (zeros if none)
  std::vector<CurvePoint> curve;
};

struct MadSettingResult {
  data::MadSetting setting;
  std::vector<MadRun> runs;  ///< one per grid cell
  size_t best_run = 0;       ///< highest accuracy
  double accuracy = 0;       ///< best run's macro test accuracy
};

struct MadTaskScore {
  data::MadTask task;
  double score = 0;  ///< mean accuracy over the task's settings
};

struct MadEvaluation {
  std::vector<MadSettingResult> settings;
  std::vector<MadTaskScore> tasks;
  double objective = 0;  ///< mean of the task scores: higher is better
  bool any_diverged = false;
  double seconds = 0;
};

/// The settings an evaluation runs, after the options' overrides (validated).
std::vector<data::MadSetting> selected_settings(const MadEvaluationOptions& options);

/// Evaluates `genome` at width `shape` (vocabulary, backbone and length are set per
/// setting). Rank-local, or collective over the context's team; a diverged run is
/// recorded, not thrown.
MadEvaluation evaluate_mad(const arch::Genome& genome, const arch::ModelShape& shape,
                           const MadEvaluationOptions& options, const TrainingRecipe& recipe,
                           const TrainingContext& context = {});

/// Trains and scores one setting with one (lr, weight decay); exposed for tests.
MadRun train_mad_setting(const arch::Genome& genome, const arch::ModelShape& shape, const data::MadData& data,
                         const data::MadSetting& setting, double lr, double weight_decay,
                         const MadEvaluationOptions& options, const TrainingRecipe& recipe,
                         const TrainingContext& context = {});

}  // namespace hnas::train
