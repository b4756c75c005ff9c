// SPDX-License-Identifier: Apache-2.0
// The pre-training plan against numbers worked out by hand for a small model.
#include "hnas/pretrain/resources.hpp"

#include <gtest/gtest.h>

#include "hnas/core/error.hpp"

namespace hnas::pretrain {
namespace {

// d_model 32, 2 query heads and 1 KV head of 16, MLP hidden 64, 257 tokens, tied.
arch::ModelShape small_shape() {
  arch::ModelShape s;
  s.backbone = arch::Backbone::LanguageModel;
  s.d_model = 32;
  s.num_heads = 2;
  s.num_kv_heads = 1;
  s.head_dim = 16;
  s.mlp_hidden = 64;
  s.vocab_size = 257;
  s.max_seq_len = 32;
  s.tie_embeddings = true;
  s.attention_bias = false;
  s.head_bias = false;
  return s;
}

PretrainOptions small_recipe() {
  PretrainOptions o;
  o.seq_len = 32;
  o.global_batch = 8;
  o.micro_batch = 2;
  o.tokens = 40960 + 100;                 // whole global batches only: 160 steps
  o.kernels = model::Kernels::Reference;  // keeps the scores on every CPU
  o.write_gbps = 1.0;
  return o;
}

PlanAssumptions two_ranks() {
  PlanAssumptions where;
  where.ranks = 2;
  where.peak_flops = 1e9;
  where.mfu = 0.5;
  return where;
}

TEST(PretrainPlan, MatchesTheHandComputedFigures) {
  const auto plan = plan_model(arch::Genome::parse("AM"), small_shape(), small_recipe(), two_ranks());
  // Parameters: embedding 257 x 32 = 8224 (the head shares it); attention: norm 32, qkv
  // (2 + 2 x 1) x 16 x 32 = 2048, out 32 x 32 = 1024; MLP: norm 32, gate|up 128 x 32 =
  // 4096, down 32 x 64 = 2048; final norm 32.
  EXPECT_EQ(plan.parameters.total, 8224 + 32 + 2048 + 1024 + 32 + 4096 + 2048 + 32);
  EXPECT_EQ(plan.parameters.total, 17536);
  EXPECT_EQ(plan.attention_layers, 1);
  EXPECT_EQ(plan.steps, 160);
  EXPECT_EQ(plan.tokens, 40960);
  // Forward per token: 2 x (2048 + 1024 + 4096 + 2048) for the matrices, 2 x 32 x 257 for
  // the head, and attention's scores and values at the mean causal context of 33/2
  // positions: 2 x 2 x (2 heads x 16) x 16.5 = 2112. Training: 3x.
  const double forward = 2.0 * (2048 + 1024 + 4096 + 2048) + 2.0 * 32 * 257 + 2112;
  EXPECT_DOUBLE_EQ(plan.flops_per_token, 3 * forward);
  EXPECT_DOUBLE_EQ(plan.total_flops, 3 * forward * 40960);
  EXPECT_DOUBLE_EQ(plan.seconds, 3 * forward * 40960 / (2 * 1e9 * 0.5));
  // float32: 4 bytes a weight, gradients twice (the team's flat reduction buffer), AdamW
  // two moments with up to 15 floats of alignment padding for each of 5 x 2 + 12 tensors.
  EXPECT_EQ(plan.memory.parameters, 4 * 17536);
  EXPECT_EQ(plan.memory.gradients, 2 * 4 * 17536);
  EXPECT_EQ(plan.memory.optimizer_state, 2 * 4 * (17536 + 15 * 22));
  // The reference attention's softmax: 1 layer x 2 sequences x 2 heads x 32 x 32 floats.
  EXPECT_EQ(plan.attention_score_bytes, 1 * 2 * 2 * 32 * 32 * 4);
  EXPECT_EQ(plan.memory.total,
            plan.memory.parameters + plan.memory.gradients + plan.memory.optimizer_state + plan.memory.activations);
  // ZeRO-1 over 2 ranks: half the moments, all else alike.
  EXPECT_EQ(plan.memory_zero1.optimizer_state, 4 * (17536 + 15 * 22));
  EXPECT_EQ(plan.memory.total - plan.memory_zero1.total, 4 * (17536 + 15 * 22));
  // Checkpoint: float32 weights and two moments, 12 bytes a parameter, at 1 GB/s.
  EXPECT_EQ(plan.checkpoint_bytes, 12 * 17536);
  EXPECT_DOUBLE_EQ(plan.checkpoint_seconds, 12 * 17536 / 1e9);
}

TEST(PretrainPlan, OnGpusAddsTheBf16WeightsAndBothScoreCopies) {
  auto where = two_ranks();
  const auto cpu = plan_model(arch::Genome::parse("AM"), small_shape(), small_recipe(), where);
  where.on_gpu = true;
  const auto gpu = plan_model(arch::Genome::parse("AM"), small_shape(), small_recipe(), where);
  EXPECT_EQ(gpu.memory.parameters - cpu.memory.parameters, 2 * 17536);
  EXPECT_EQ(gpu.attention_score_bytes, 1 * 2 * 2 * 32 * 32 * 6);
  EXPECT_EQ(gpu.memory.activations - cpu.memory.activations, 1 * 2 * 2 * 32 * 32 * 2);
}

TEST(PretrainPlan, ScoresGrowWithTheSquareOfTheContext) {
  auto recipe = small_recipe();
  recipe.seq_len = 128;
  recipe.tokens = 8 * 128 * 10;
  auto shape = small_shape();
  shape.max_seq_len = 128;
  const auto plan = plan_model(arch::Genome::parse("AAM"), shape, recipe, two_ranks());
  EXPECT_EQ(plan.attention_score_bytes, 2 * 2 * 2 * 128 * 128 * 4);
  EXPECT_EQ(plan.steps, 10);
  EXPECT_EQ(plan.memory_zero1.total > 0, true);
  PlanAssumptions one;
  EXPECT_EQ(plan_model(arch::Genome::parse("AAM"), shape, recipe, one).memory_zero1.total, 0);  // nothing to shard
}

TEST(PretrainPlan, LongContextsHoldOneBlockOfScores) {
  auto recipe = small_recipe();
  recipe.seq_len = 2048;
  recipe.global_batch = 4;
  recipe.micro_batch = 1;
  recipe.tokens = 4 * 2048 * 3;
  PlanAssumptions where = two_ranks();
  where.on_gpu = true;
  const auto plan = plan_model(arch::Genome::parse("AAAM"), small_shape(), recipe, where);
  // Not 3 layers x 2 heads x 2048^2 x 6 bytes (the reference), but one block of 512
  // queries against 2048 keys for 2 heads, 16 bytes each.
  EXPECT_EQ(plan.attention_score_bytes, 1 * 2 * 512 * 2048 * 16);
}

TEST(PretrainPlan, RecomputationKeepsOnlyTheSublayerInputsAndCostsAThirdMoreTime) {
  auto recipe = small_recipe();
  const auto genome = arch::Genome::parse("AMAMAM");
  const auto kept = plan_model(genome, small_shape(), recipe, two_ranks());
  recipe.recompute = true;
  const auto recomputed = plan_model(genome, small_shape(), recipe, two_ranks());
  // Saved per token: attention 2d + 1 + qkv 64 + out 32 + 2 logsumexps = 163, MLP 2d + 1 +
  // 3 x 64 = 257; all six: 1260. Recomputed: six inputs of d = 32 and the largest, 257:
  // 449. 811 fewer for each of 2 x 32 tokens, 4 bytes, plus a quarter for the heap; and
  // the scores of one attention layer instead of three (2 x 2 x 32 x 32 floats each).
  EXPECT_EQ(kept.memory.activations - recomputed.memory.activations, 811 * 64 * 4 * 5 / 4 + 2 * (2 * 2 * 32 * 32 * 4));
  EXPECT_EQ(recomputed.memory.parameters + recomputed.memory.gradients + recomputed.memory.optimizer_state,
            kept.memory.parameters + kept.memory.gradients + kept.memory.optimizer_state);
  EXPECT_EQ(recomputed.attention_score_bytes, kept.attention_score_bytes / 3);  // one layer's at a time
  EXPECT_DOUBLE_EQ(recomputed.total_flops, kept.total_flops);                   // the model's FLOPs
  EXPECT_DOUBLE_EQ(recomputed.seconds, kept.seconds * 4 / 3);                   // the device's
}

TEST(PretrainPlan, RefusesWhatCannotFitNamingTheKeys) {
  auto recipe = small_recipe();
  const auto plan = plan_model(arch::Genome::parse("AM"), small_shape(), recipe, two_ranks());
  EXPECT_NO_THROW(check_plan_fits(plan, recipe, plan.memory.total, "AM", "the test's memory"));
  EXPECT_NO_THROW(check_plan_fits(plan, recipe, -1, "AM", "unknown memory"));
  try {
    check_plan_fits(plan, recipe, plan.memory.total - 1, "AM", "the test's memory");
    FAIL() << "a plan one byte too large was accepted";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("pre-training AM needs"), std::string::npos) << message;
    EXPECT_NE(message.find("the test's memory"), std::string::npos) << message;
    EXPECT_NE(message.find("pretrain.micro_batch (now 2)"), std::string::npos) << message;
    EXPECT_NE(message.find("pretrain.shard_optimizer = true"), std::string::npos) << message;
    EXPECT_NE(message.find("pretrain.recompute = true"), std::string::npos) << message;
  }
  // At micro-batch 1, sharded and recomputed, only a shorter context is left to suggest.
  recipe.micro_batch = 1;
  recipe.shard_optimizer = true;
  recipe.recompute = true;
  const auto least = plan_model(arch::Genome::parse("AM"), small_shape(), recipe, two_ranks());
  try {
    check_plan_fits(least, recipe, least.memory_zero1.total - 1, "AM", "the test's memory");
    FAIL() << "a plan one byte too large was accepted";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("; lower pretrain.seq_len (now 32)"), std::string::npos) << message;
    EXPECT_EQ(message.find("micro_batch"), std::string::npos) << message;
  }
  recipe.micro_batch = 2;
  recipe.recompute = false;
  // Sharded, the same memory fits.
  recipe.shard_optimizer = true;
  EXPECT_NO_THROW(check_plan_fits(plan, recipe, plan.memory.total - 1, "AM", "the test's memory"));
}

TEST(PretrainPlan, RefusesABatchTheRanksCannotSplit) {
  auto recipe = small_recipe();
  recipe.global_batch = 6;  // 2 ranks x micro-batch 2 = 4 does not divide it
  EXPECT_THROW(plan_model(arch::Genome::parse("AM"), small_shape(), recipe, two_ranks()), ConfigError);
  recipe.global_batch = 8;
  recipe.tokens = 8 * 32 - 1;  // less than one global batch
  EXPECT_THROW(plan_model(arch::Genome::parse("AM"), small_shape(), recipe, two_ranks()), ConfigError);
}

}  // namespace
}  // namespace hnas::pretrain
