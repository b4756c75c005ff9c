// SPDX-License-Identifier: Apache-2.0
#include "hnas/train/token_evaluation.hpp"

#include <torch/torch.h>

#include "hnas/core/check.hpp"
#include "hnas/core/rng.hpp"
#include "hnas/data/shard_inputs.hpp"
#include "hnas/data/token_dataset.hpp"
#include "hnas/dist/gradient_reducer.hpp"
#include "hnas/train/metrics.hpp"

namespace hnas::train {
namespace {

torch::Tensor to_tensor(const std::vector<int64_t>& values, int64_t rows, int64_t cols) {
  return torch::from_blob(const_cast<int64_t*>(values.data()), {rows, cols}, torch::kInt64).clone();
}

class WindowBatches : public BatchSource {
 public:
  explicit WindowBatches(const data::WindowSampler& sampler) : sampler_(sampler) {}
  Batch next() override {
    const data::Batch b = sampler_.train_batch(step_++);
    return {to_tensor(b.inputs, b.batch_size, b.seq_len), to_tensor(b.targets, b.batch_size, b.seq_len)};
  }

 private:
  const data::WindowSampler& sampler_;
  uint64_t step_ = 0;
};

// Validation metrics; a team shares the batches round-robin and sums the metrics
// (collective over the team then).
EvalMetrics evaluate_windows(model::HybridModel& model, const data::WindowSampler& sampler,
                             const dist::GradientReducer* team) {
  torch::NoGradGuard no_grad;
  MetricsAccumulator acc;
  const int64_t ranks = team ? team->size() : 1, rank = team ? team->rank() : 0;
  for (int64_t i = rank; i < sampler.num_val_batches(); i += ranks) {
    const data::Batch b = sampler.val_batch(i);
    const auto device = model->parameters().front().device();
    auto logits = model->forward(to_tensor(b.inputs, b.batch_size, b.seq_len).to(device));
    acc.add(batch_metrics(logits, to_tensor(b.targets, b.batch_size, b.seq_len).to(device)), b.batch_size);
  }
  acc.sum_over(team);
  return {acc.loss(), acc.macro_accuracy(), acc.micro_accuracy(), std::exp(acc.loss())};
}

}  // namespace

TokenEvaluation evaluate_tokens(const arch::Genome& genome, const arch::ModelShape& shape,
                                const TokenEvaluationOptions& o, const TrainingRecipe& recipe,
                                const TrainingContext& context) {
  HNAS_CHECK(!o.train_paths.empty(), ConfigError, "no token shards given (data = ...)");
  // Validation shards, when given, follow the training shards and are split off by shard.
  const data::TokenDataset dataset(data::all_shard_specs(o.train_paths, o.valid_paths), o.vocab_size);
  data::SamplerOptions sampling;
  sampling.seq_len = o.seq_len;
  sampling.batch_size = o.batch_size;
  sampling.seed = o.data_seed;
  sampling.num_val_windows = o.val_windows;
  sampling.split = data::split_of(o.valid_paths.size(), o.val_fraction);
  const data::WindowSampler sampler(dataset, sampling);

  model::HybridModelOptions model_options;
  model_options.genome = genome;
  model_options.shape = shape;
  model_options.shape.vocab_size = o.vocab_size;
  model_options.shape.backbone = arch::Backbone::LanguageModel;
  model_options.shape.max_seq_len = o.seq_len;
  model_options.kernels = recipe.kernels;
  model_options.init = recipe.init;
  model_options.seed = derive_seed(recipe.init_seed, "init tokens");
  model::HybridModel model(model_options);
  model->to(context.device);

  TrainerOptions t = recipe.trainer;
  t.schedule.peak_lr = o.lr;
  t.schedule.total_steps = o.steps;
  t.weight_decay = o.weight_decay;
  t.eval_every = o.eval_every;
  t.target_accuracy = 0;
  if (t.label.empty()) t.label = genome.to_string();
  t.train_flops_per_token = 3.0 * arch::forward_flops_per_token(genome, model_options.shape, o.seq_len);

  WindowBatches batches(sampler);
  TokenEvaluation evaluation;
  evaluation.result = train_model(
      model, batches, [&](model::HybridModel& m) { return evaluate_windows(m, sampler, context.reducer); }, t, context);
  evaluation.validation_loss = evaluation.result.evals.empty() ? NAN : evaluation.result.evals.back().metrics.loss;
  evaluation.objective = -evaluation.validation_loss;
  return evaluation;
}

}  // namespace hnas::train
