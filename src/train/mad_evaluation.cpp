// SPDX-License-Identifier: Apache-2.0
#include "hnas/train/mad_evaluation.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>

#include "hnas/core/check.hpp"
#include "hnas/core/log.hpp"
#include "hnas/core/rng.hpp"
#include "hnas/dist/gradient_reducer.hpp"
#include "hnas/train/metrics.hpp"

namespace hnas::train {
namespace {

torch::Tensor to_tensor(const std::vector<int32_t>& values, int64_t rows, int64_t cols) {
  return torch::from_blob(const_cast<int32_t*>(values.data()), {rows, cols}, torch::kInt32).to(torch::kInt64);
}

// Epochs over an in-memory split: a fresh shuffle each epoch, last partial batch kept.
class EpochBatches : public BatchSource {
 public:
  EpochBatches(const data::MadSplit& split, int64_t batch_size, uint64_t seed)
      : inputs_(to_tensor(split.inputs, split.num_rows, split.row_length)),
        targets_(to_tensor(split.targets, split.num_rows, split.row_length)),
        batch_size_(batch_size),
        generator_(at::detail::createCPUGenerator(seed)) {}

  Batch next() override {
    if (!order_.defined() || position_ >= inputs_.size(0)) {
      order_ = torch::randperm(inputs_.size(0), generator_, torch::kLong);
      position_ = 0;
    }
    const int64_t count = std::min(batch_size_, inputs_.size(0) - position_);
    auto rows = order_.narrow(0, position_, count);
    position_ += count;
    return {inputs_.index_select(0, rows), targets_.index_select(0, rows)};
  }

 private:
  torch::Tensor inputs_, targets_, order_;
  int64_t batch_size_;
  int64_t position_ = 0;
  at::Generator generator_;
};

// Test metrics over the split's batches; a team shares the batches round-robin and sums
// the metrics (collective over the team then).
EvalMetrics evaluate_split(model::HybridModel& model, const torch::Tensor& inputs, const torch::Tensor& targets,
                           int64_t batch_size, const dist::GradientReducer* team) {
  torch::NoGradGuard no_grad;
  MetricsAccumulator acc;
  const int64_t ranks = team ? team->size() : 1, rank = team ? team->rank() : 0;
  for (int64_t start = rank * batch_size; start < inputs.size(0); start += ranks * batch_size) {
    const int64_t count = std::min(batch_size, inputs.size(0) - start);
    auto logits = model->forward(inputs.narrow(0, start, count));
    acc.add(batch_metrics(logits, targets.narrow(0, start, count)), count);
  }
  acc.sum_over(team);
  return {acc.loss(), acc.macro_accuracy(), acc.micro_accuracy(), acc.mean_batch_perplexity()};
}

arch::ModelShape shape_for(const arch::ModelShape& base, const data::MadSetting& setting) {
  arch::ModelShape s = base;
  s.vocab_size = setting.vocab_size;
  s.backbone = setting.autoencoder() ? arch::Backbone::AutoEncoder : arch::Backbone::LanguageModel;
  s.max_seq_len = setting.input_length();
  return s;
}

}  // namespace

std::vector<data::MadSetting> selected_settings(const MadEvaluationOptions& o) {
  std::vector<data::MadSetting> out;
  for (data::MadTask task : o.tasks) {
    auto settings =
        o.all_settings ? data::benchmark_settings(task) : std::vector<data::MadSetting>{data::baseline_setting(task)};
    for (auto& s : settings) {
      if (o.num_train > 0) s.num_train = o.num_train;
      if (o.seq_len > 0) s.seq_len = o.seq_len;
      s.num_test = o.num_test;
      s.seed = o.data_seed;
      s.validate();
      out.push_back(s);
    }
  }
  return out;
}

MadRun train_mad_setting(const arch::Genome& genome, const arch::ModelShape& shape, const data::MadData& data,
                         const data::MadSetting& setting, double lr, double weight_decay, const MadEvaluationOptions& o,
                         const TrainingRecipe& recipe, const TrainingContext& context) {
  const std::string label = setting.label() + log::format(" lr=%g wd=%g", lr, weight_decay);
  model::HybridModelOptions model_options;
  model_options.genome = genome;
  model_options.shape = shape_for(shape, setting);
  model_options.kernels = recipe.kernels;
  model_options.init = recipe.init;
  model_options.seed = derive_seed(recipe.init_seed, "init " + setting.label());
  model::HybridModel model(model_options);
  model->to(context.device);

  EpochBatches batches(data.train, o.batch_size, derive_seed(recipe.init_seed, "shuffle " + label));
  const auto test_inputs = to_tensor(data.test.inputs, data.test.num_rows, data.test.row_length).to(context.device);
  const auto test_targets = to_tensor(data.test.targets, data.test.num_rows, data.test.row_length).to(context.device);
  Evaluator evaluate = [&](model::HybridModel& m) {
    return evaluate_split(m, test_inputs, test_targets, o.batch_size, context.reducer);
  };

  TrainerOptions t = recipe.trainer;
  const int64_t steps_per_epoch = (data.train.num_rows + o.batch_size - 1) / o.batch_size;
  t.schedule.peak_lr = lr;
  t.schedule.total_steps = steps_per_epoch * o.epochs;
  t.weight_decay = weight_decay;
  t.eval_every = steps_per_epoch;  // MAD evaluates after every epoch
  t.target_accuracy = o.target_accuracy;
  t.label = label;
  t.train_flops_per_token = 3.0 * arch::forward_flops_per_token(genome, model_options.shape, setting.input_length());

  const TrainResult result = train_model(model, batches, evaluate, t, context);
  MadRun run;
  run.lr = lr;
  run.weight_decay = weight_decay;
  run.status = result.status;
  run.steps = result.steps;
  run.seconds = result.seconds;
  run.curve = result.curve;
  if (result.best.step >= 0) run.best = result.best.metrics;
  return run;
}

MadEvaluation evaluate_mad(const arch::Genome& genome, const arch::ModelShape& shape, const MadEvaluationOptions& o,
                           const TrainingRecipe& recipe, const TrainingContext& context) {
  HNAS_CHECK(!o.learning_rates.empty() && !o.weight_decays.empty(), ConfigError,
             "mad.learning_rates and mad.weight_decays must each list at least one value");
  const auto start = std::chrono::steady_clock::now();
  MadEvaluation evaluation;
  for (const data::MadSetting& setting : selected_settings(o)) {
    const data::MadData data = data::generate(setting);
    MadSettingResult setting_result;
    setting_result.setting = setting;
    for (double lr : o.learning_rates) {
      for (double wd : o.weight_decays) {
        MadRun run = train_mad_setting(genome, shape, data, setting, lr, wd, o, recipe, context);
        evaluation.any_diverged |= run.status == RunStatus::Diverged;
        setting_result.runs.push_back(std::move(run));
      }
    }
    for (size_t i = 0; i < setting_result.runs.size(); ++i)
      if (setting_result.runs[i].best.accuracy > setting_result.runs[setting_result.best_run].best.accuracy)
        setting_result.best_run = i;
    setting_result.accuracy = setting_result.runs[setting_result.best_run].best.accuracy;
    evaluation.settings.push_back(std::move(setting_result));
  }
  for (data::MadTask task : o.tasks) {
    double sum = 0;
    int count = 0;
    for (const auto& s : evaluation.settings)
      if (s.setting.task == task) sum += s.accuracy, ++count;
    evaluation.tasks.push_back({task, count ? sum / count : 0.0});
    evaluation.objective += evaluation.tasks.back().score;
  }
  evaluation.objective /= static_cast<double>(std::max<size_t>(1, evaluation.tasks.size()));
  evaluation.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return evaluation;
}

}  // namespace hnas::train
