#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "hnas/cli/options.hpp"
#include "hnas/core/error.hpp"
#include "support/test_support.hpp"

namespace {

using hnas::cli::Command;

hnas::cli::Invocation parse(std::vector<std::string> args) {
  args.insert(args.begin(), "hnas");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return hnas::cli::parse_command_line(static_cast<int>(argv.size()), argv.data());
}

std::string error_of(std::vector<std::string> args) {
  try {
    parse(std::move(args));
  } catch (const hnas::ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string write_ini(const hnas::testing::TempDir& dir, const std::string& text) {
  const std::string path = dir.file("config.ini");
  std::ofstream(path) << text;
  return path;
}

TEST(Options, evaluate_defaults_follow_mad) {
  const auto inv = parse({"evaluate", "--arch", "A2M4"});
  ASSERT_EQ(inv.command, Command::Evaluate);
  const auto& o = inv.evaluate;
  EXPECT_EQ(o.genome.to_string(), "AAMMMM");
  EXPECT_EQ(o.shape.d_model, 128);
  EXPECT_EQ(o.shape.mlp_hidden, 352);
  EXPECT_FALSE(o.on_tokens);
  ASSERT_EQ(o.mad.tasks.size(), 1u);
  EXPECT_EQ(o.mad.tasks[0], hnas::data::MadTask::InContextRecall);
  EXPECT_EQ(o.mad.epochs, 200);
  EXPECT_NE(o.effective_ini.find("[model]\nd_model = 128"), std::string::npos) << o.effective_ini;
}

TEST(Options, command_line_overrides_the_ini_file) {
  hnas::testing::TempDir dir;
  const auto path =
      write_ini(dir,
                "arch = MMMM\ntask = compression, memorization\n[model]\nd_model = 64\nheads = 4\nkv_heads = 2\n"
                "[mad]\nepochs = 3\nlearning_rates = 1e-4, 1e-3\n");
  const auto inv = parse({"evaluate", "--config", path, "--model.d_model=32", "--arch", "AM"});
  const auto& o = inv.evaluate;
  EXPECT_EQ(o.shape.d_model, 32);
  EXPECT_EQ(o.shape.num_heads, 4);
  EXPECT_EQ(o.genome.to_string(), "AM");
  EXPECT_EQ(o.mad.epochs, 3);
  EXPECT_EQ(o.mad.learning_rates, (std::vector<double>{1e-4, 1e-3}));
  ASSERT_EQ(o.mad.tasks.size(), 2u);
  EXPECT_EQ(o.mad.tasks[1], hnas::data::MadTask::Memorization);
}

TEST(Options, unknown_keys_are_rejected_with_the_key_named) {
  EXPECT_NE(error_of({"evaluate", "--arch", "AM", "--model.dmodel=3"}).find("model.dmodel"), std::string::npos);
  hnas::testing::TempDir dir;
  const auto path = write_ini(dir, "[train]\nlrr = 3\n");
  EXPECT_NE(error_of({"evaluate", "--arch", "AM", "--config", path}).find("train.lrr"), std::string::npos);
}

TEST(Options, out_of_range_values_name_their_key_and_all_are_reported) {
  const std::string message =
      error_of({"evaluate", "--arch", "AM", "--mad.epochs=0", "--train.beta2=1.5", "--model.kv_heads=3"});
  EXPECT_NE(message.find("mad.epochs"), std::string::npos) << message;
  EXPECT_NE(message.find("train.beta2"), std::string::npos) << message;
  EXPECT_NE(message.find("model.kv_heads"), std::string::npos) << message;
  EXPECT_NE(error_of({"evaluate", "--arch", "AM", "--mad.epochs=abc"}).find("mad.epochs"), std::string::npos);
}

TEST(Options, bad_architecture_task_and_files_get_clear_errors) {
  EXPECT_NE(error_of({"evaluate", "--arch", "AXM"}).find("position 2"), std::string::npos);
  EXPECT_NE(error_of({"evaluate"}).find("arch is required"), std::string::npos);
  EXPECT_NE(error_of({"evaluate", "--arch", "AM", "--task", "recall"}).find("in-context-recall"), std::string::npos);
  EXPECT_NE(error_of({"evaluate", "--arch", "AM", "--config", "/nonexistent.ini"}).find("/nonexistent.ini"),
            std::string::npos);
  EXPECT_NE(error_of({"frobnicate"}).find("unknown command"), std::string::npos);
  EXPECT_NE(error_of({"evaluate", "--arch", "AM", "--mad.seq_len=31"}).find("seq_len"), std::string::npos);
}

TEST(Options, data_switches_to_token_evaluation) {
  const auto inv = parse({"evaluate", "--arch", "AM", "--data", "a.bin,b.bin", "--tokens.steps=7"});
  EXPECT_TRUE(inv.evaluate.on_tokens);
  EXPECT_EQ(inv.evaluate.tokens.train_paths, (std::vector<std::string>{"a.bin", "b.bin"}));
  EXPECT_EQ(inv.evaluate.tokens.steps, 7);
  EXPECT_EQ(inv.evaluate.tokens.init, hnas::model::InitScheme::Llama);  // init = auto
  EXPECT_DOUBLE_EQ(inv.evaluate.tokens.trainer.grad_clip, 1.0);         // grad_clip = auto
  EXPECT_DOUBLE_EQ(parse({"evaluate", "--arch", "AM"}).evaluate.mad.trainer.grad_clip, 0.0);
  EXPECT_DOUBLE_EQ(parse({"evaluate", "--arch", "AM", "--train.grad_clip=0.5"}).evaluate.mad.trainer.grad_clip, 0.5);
  EXPECT_NE(error_of({"evaluate", "--arch", "AM", "--train.grad_clip=-1"}).find("train.grad_clip"), std::string::npos);
  EXPECT_EQ(parse({"evaluate", "--arch", "AM"}).evaluate.mad.init, hnas::model::InitScheme::Mad);
  EXPECT_EQ(parse({"evaluate", "--arch", "AM", "--model.init=llama"}).evaluate.mad.init,
            hnas::model::InitScheme::Llama);
}

TEST(Options, help_and_version) {
  EXPECT_EQ(parse({}).command, Command::Help);
  EXPECT_EQ(parse({"--version"}).command, Command::Version);
  const auto help = parse({"evaluate", "--help"});
  EXPECT_EQ(help.command, Command::Help);
  EXPECT_NE(help.help.find("model.kv_heads"), std::string::npos);
}

TEST(Options, search_reads_the_strategy_space_and_team_keys) {
  hnas::testing::TempDir dir;
  const auto ini = write_ini(dir,
                             "task = in-context-recall\n[search]\nstrategy = middle_incremental\nnum_layers = 4\n"
                             "target_layers = 12\nprimitives = AM\nfirst = M\nmax_attention_fraction = 0.5\n"
                             "ranks_per_candidate = 2\nasha_rungs = 3\n");
  const auto inv = parse({"search", "--config", ini, "--run-dir", dir.file("run"), "--search.seed=7"});
  ASSERT_EQ(inv.command, Command::Search);
  const auto& s = inv.search;
  EXPECT_EQ(s.strategy.kind, hnas::search::StrategyKind::MiddleIncremental);
  EXPECT_EQ(s.strategy.space.num_layers, 4);
  EXPECT_EQ(s.strategy.target_layers, 12);
  ASSERT_TRUE(s.strategy.space.first.has_value());
  EXPECT_EQ(*s.strategy.space.first, hnas::arch::Primitive::Mlp);
  EXPECT_FALSE(s.strategy.space.last.has_value());
  EXPECT_DOUBLE_EQ(s.strategy.space.max_attention_fraction, 0.5);
  EXPECT_EQ(s.strategy.seed, 7u);
  EXPECT_EQ(s.strategy.halving.rungs, 3);
  EXPECT_EQ(s.ranks_per_candidate, 2);
  EXPECT_EQ(s.run_dir, dir.file("run"));
  EXPECT_EQ(s.evaluation.mad.tasks.size(), 1u);
  EXPECT_NE(s.effective_ini.find("strategy = middle_incremental"), std::string::npos);
  EXPECT_EQ(s.effective_ini.find("\narch ="), std::string::npos);  // the strategy chooses it
}

TEST(Options, search_problems_are_reported_together_with_their_keys) {
  const auto message = error_of({"search", "--search.strategy=annealing", "--search.primitives=AX", "--search.first=AM",
                                 "--search.ranks_per_candidate=0", "--run.device=tpu"});
  EXPECT_NE(message.find("--run-dir is required"), std::string::npos) << message;
  EXPECT_NE(message.find("search.strategy must be exhaustive, random, bo"), std::string::npos) << message;
  EXPECT_NE(message.find("search.primitives: unknown primitive 'X'"), std::string::npos) << message;
  EXPECT_NE(message.find("search.first must be one primitive letter"), std::string::npos) << message;
  EXPECT_NE(message.find("search.ranks_per_candidate must be >= 1"), std::string::npos) << message;
  EXPECT_NE(message.find("run.device must be cpu or cuda"), std::string::npos) << message;
  // search keys do not exist for evaluate, and arch does not exist for search
  EXPECT_NE(error_of({"evaluate", "--arch", "AM", "--search.seed=1"}).find("search.seed"), std::string::npos);
  EXPECT_NE(error_of({"search", "--run-dir", "x", "--arch", "AM"}).find("arch"), std::string::npos);
}

}  // namespace
