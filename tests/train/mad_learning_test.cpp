// The evaluator must tell architectures apart: on a small in-context-recall setting a
// model with attention learns the task and an MLP-only model of the same depth cannot
// (it has no way to look up earlier tokens).
#include <gtest/gtest.h>

#include "hnas/core/log.hpp"
#include "hnas/core/process.hpp"
#include "hnas/train/mad_evaluation.hpp"
#include "hnas/train/throughput.hpp"

namespace {

using namespace hnas;

train::MadEvaluationOptions small_recall() {
  train::MadEvaluationOptions o;
  o.tasks = {data::MadTask::InContextRecall};
  o.seq_len = 32;
  o.num_train = 4096;
  o.num_test = 256;
  o.epochs = 20;
  o.batch_size = 64;
  o.learning_rates = {3e-3};
  o.weight_decays = {0.0};
  return o;
}

train::TrainingRecipe recipe() {
  train::TrainingRecipe r;
  r.init_seed = 7;
  r.trainer.schedule.warmup_steps = 20;
  return r;
}

arch::ModelShape small_width() {
  arch::ModelShape s;
  s.d_model = 64;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.head_dim = 16;
  s.mlp_hidden = arch::mad_swiglu_hidden(64);
  s.attention_bias = true;
  s.head_bias = true;
  return s;
}

TEST(MadLearning, attention_learns_in_context_recall_and_mlp_only_does_not) {
  const auto options = small_recall();
  const auto with_attention = train::evaluate_mad(arch::Genome::parse("AAMM"), small_width(), options, recipe());
  const auto mlp_only = train::evaluate_mad(arch::Genome::parse("MMMM"), small_width(), options, recipe());
  log::info(log::format("AAMM acc %.3f in %.1fs; MMMM acc %.3f in %.1fs", with_attention.objective,
                        with_attention.seconds, mlp_only.objective, mlp_only.seconds));
  EXPECT_GE(with_attention.objective, 0.9);
  EXPECT_LE(mlp_only.objective, 0.4);
  ASSERT_EQ(with_attention.settings.size(), 1u);
  EXPECT_EQ(with_attention.settings[0].setting.seq_len, 32);
  EXPECT_FALSE(with_attention.any_diverged);
}

}  // namespace

// Runs in the environment hnas itself runs in (BLAS kernels, OpenMP wait policy, allocator).
int main(int argc, char** argv) {
  hnas::restart_with_launch_environment(argv);
  hnas::keep_freed_memory();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
