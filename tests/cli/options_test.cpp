#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
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
  } catch (const hnas::Error& e) {
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
  const auto& e = o.evaluation;
  EXPECT_EQ(o.genome.to_string(), "AAMMMM");
  EXPECT_EQ(e.shape.d_model, 128);
  EXPECT_EQ(e.shape.mlp_hidden, 352);
  EXPECT_EQ(e.objective, hnas::train::Objective::Mad);
  ASSERT_EQ(e.mad.tasks.size(), 1u);
  EXPECT_EQ(e.mad.tasks[0], hnas::data::MadTask::InContextRecall);
  EXPECT_EQ(e.mad.epochs, 200);
  EXPECT_NE(inv.job.effective_ini.find("[model]\nd_model = 128"), std::string::npos) << inv.job.effective_ini;
}

TEST(Options, command_line_overrides_the_ini_file) {
  hnas::testing::TempDir dir;
  const auto path =
      write_ini(dir,
                "arch = MMMM\ntask = compression, memorization\n[model]\nd_model = 64\nheads = 4\nkv_heads = 2\n"
                "[mad]\nepochs = 3\nlearning_rates = 1e-4, 1e-3\n");
  const auto inv = parse({"evaluate", "--config", path, "--model.d_model=32", "--arch", "AM"});
  const auto& o = inv.evaluate.evaluation;
  EXPECT_EQ(o.shape.d_model, 32);
  EXPECT_EQ(o.shape.num_heads, 4);
  EXPECT_EQ(inv.evaluate.genome.to_string(), "AM");
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
  const auto& e = inv.evaluate.evaluation;
  EXPECT_EQ(e.objective, hnas::train::Objective::Tokens);
  EXPECT_EQ(e.tokens.train_paths, (std::vector<std::string>{"a.bin", "b.bin"}));
  EXPECT_EQ(e.tokens.steps, 7);
  EXPECT_EQ(e.recipe.init, hnas::model::InitScheme::Llama);  // init = auto
  EXPECT_DOUBLE_EQ(e.recipe.trainer.grad_clip, 1.0);         // grad_clip = auto
  const auto recipe = [](std::vector<std::string> args) { return parse(std::move(args)).evaluate.evaluation.recipe; };
  EXPECT_DOUBLE_EQ(recipe({"evaluate", "--arch", "AM"}).trainer.grad_clip, 0.0);
  EXPECT_DOUBLE_EQ(recipe({"evaluate", "--arch", "AM", "--train.grad_clip=0.5"}).trainer.grad_clip, 0.5);
  EXPECT_NE(error_of({"evaluate", "--arch", "AM", "--train.grad_clip=-1"}).find("train.grad_clip"), std::string::npos);
  EXPECT_EQ(recipe({"evaluate", "--arch", "AM"}).init, hnas::model::InitScheme::Mad);
  EXPECT_EQ(recipe({"evaluate", "--arch", "AM", "--model.init=llama"}).init, hnas::model::InitScheme::Llama);
  // several words after --data are one shard list, as on the command line of a shell glob
  const auto words = parse({"evaluate", "--arch", "AM", "--data", "a.bin", "b.bin", "--tokens.steps=7"});
  EXPECT_EQ(words.evaluate.evaluation.tokens.train_paths, (std::vector<std::string>{"a.bin", "b.bin"}));
}

TEST(Options, help_and_version) {
  EXPECT_EQ(parse({}).command, Command::Help);
  EXPECT_TRUE(parse({}).usage_error);  // no command at all: usage on stderr, exit code 2
  EXPECT_FALSE(parse({"--help"}).usage_error);
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
  EXPECT_EQ(inv.job.run_dir, dir.file("run"));
  EXPECT_EQ(s.evaluation.mad.tasks.size(), 1u);
  EXPECT_NE(inv.job.effective_ini.find("strategy = middle_incremental"), std::string::npos);
  EXPECT_EQ(inv.job.effective_ini.rfind("arch = \n", 0), 0u);  // empty: the strategy chooses it
  // what a resumed run may change comes from the declarations
  const auto& free = inv.job.keys_free_on_resume;
  for (const char* key : {"run.threads", "run.device", "search.ranks_per_candidate", "search.results_overhead"})
    EXPECT_NE(std::find(free.begin(), free.end(), key), free.end()) << key;
  EXPECT_EQ(std::find(free.begin(), free.end(), "search.seed"), free.end());
}

TEST(Options, search_problems_are_reported_together_with_their_keys) {
  const auto message = error_of({"search", "--search.strategy=annealing", "--search.primitives=AX", "--search.first=AM",
                                 "--search.ranks_per_candidate=0", "--run.device=tpu"});
  EXPECT_NE(message.find("--run-dir is required"), std::string::npos) << message;
  EXPECT_NE(message.find("search.strategy must be one of exhaustive, random, bo"), std::string::npos) << message;
  EXPECT_NE(message.find("search.primitives: unknown primitive 'X'"), std::string::npos) << message;
  EXPECT_NE(message.find("search.first must be one primitive letter"), std::string::npos) << message;
  EXPECT_NE(message.find("search.ranks_per_candidate must be >= 1"), std::string::npos) << message;
  EXPECT_NE(message.find("run.device must be one of cpu, cuda"), std::string::npos) << message;
  // search keys do not exist for evaluate, and arch does not exist for search
  EXPECT_NE(error_of({"evaluate", "--arch", "AM", "--search.seed=1"}).find("search.seed"), std::string::npos);
  EXPECT_NE(error_of({"search", "--run-dir", "x", "--arch", "AM"}).find("arch"), std::string::npos);
}

// ---- hardening: every input a user can get wrong gets one line naming it ----

std::string input_error_of(std::vector<std::string> args) {
  try {
    parse(std::move(args));
  } catch (const hnas::Error& e) {
    EXPECT_EQ(e.exit_code(), hnas::kExitConfig) << e.what();
    return e.what();
  }
  return "";
}

TEST(Hardening, words_that_are_not_options_are_refused_with_a_hint) {
  const auto stray = [](std::vector<std::string> args) { return input_error_of(std::move(args)); };
  EXPECT_NE(stray({"evaluate", "--arch", "AM", "inputs/mad_cpu.ini"}).find("--config inputs/mad_cpu.ini"),
            std::string::npos);
  EXPECT_NE(stray({"evaluate", "AAMM"}).find("--arch AAMM"), std::string::npos);
  EXPECT_NE(stray({"evaluate", "--arch", "AM", "--tokens.steps=3", "b.bin"}).find("unexpected word \"b.bin\""),
            std::string::npos);
  EXPECT_NE(stray({"evaluate", "--arch", "AM", "stray"}).find("unexpected word \"stray\""), std::string::npos);
}

TEST(Hardening, config_paths_that_are_not_readable_files_are_named) {
  hnas::testing::TempDir dir;
  EXPECT_NE(input_error_of({"evaluate", "--arch", "AM", "--config", dir.path()}).find("is a directory"),
            std::string::npos);
  const std::string fifo = dir.file("pipe.ini");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(input_error_of({"evaluate", "--arch", "AM", "--config", fifo}).find("FIFO"), std::string::npos);
  EXPECT_NE(input_error_of({"evaluate", "--arch", "AM", "--config", dir.file("none.ini")}).find("does not exist"),
            std::string::npos);
}

TEST(Hardening, a_utf8_byte_order_mark_is_accepted) {
  hnas::testing::TempDir dir;
  const auto path = write_ini(dir, "\xEF\xBB\xBF[model]\nd_model = 64\nheads = 4\nkv_heads = 4\n");
  EXPECT_EQ(parse({"evaluate", "--arch", "AM", "--config", path}).evaluate.evaluation.shape.d_model, 64);
}

TEST(Hardening, non_finite_reals_are_refused_for_every_real_key) {
  for (const auto& key : hnas::cli::declared_keys(Command::Search)) {
    if (key.type != "float") continue;
    for (const char* value : {"inf", "nan", "-inf"}) {
      const auto message = input_error_of({"search", "--run-dir", "r", "--" + key.key + "=" + value});
      EXPECT_NE(message.find(key.key + ": " + value + " is not a finite number"), std::string::npos) << message;
    }
  }
  EXPECT_NE(input_error_of({"evaluate", "--arch", "AM", "--mad.learning_rates=1e-3,nan"}).find("mad.learning_rates"),
            std::string::npos);
}

TEST(Hardening, a_shard_listed_twice_or_as_both_training_and_validation_is_refused) {
  EXPECT_NE(input_error_of({"evaluate", "--arch", "AM", "--data", "a.bin", "./a.bin"}).find("listed twice"),
            std::string::npos);
  const auto both = input_error_of({"evaluate", "--arch", "AM", "--data", "a.bin", "b.bin", "--tokens.valid", "b.bin"});
  EXPECT_NE(both.find("b.bin is both a training shard"), std::string::npos) << both;
}

TEST(Hardening, overlong_and_unprintable_culprits_are_shortened_and_escaped) {
  const auto message = input_error_of({"evaluate", "--arch", "AM", "--model.init=" + std::string(500, 'x') + "\x1b"});
  EXPECT_LT(message.size(), 300u) << message;
  EXPECT_EQ(message.find('\x1b'), std::string::npos);
  EXPECT_NE(input_error_of({"evaluate", "--arch", "AM", "--model.kernels=a\nb"}).find("a\\nb"), std::string::npos);
}

TEST(Aggregate, keys_parse_into_the_options_and_the_run_directory_is_required) {
  const auto inv = parse({"aggregate", "--run-dir", "r", "--aggregate.clusters=3", "--aggregate.context=all",
                          "--aggregate.fallback=context", "--aggregate.top_fraction=0.25", "--partial"});
  ASSERT_EQ(inv.command, Command::Aggregate);
  EXPECT_EQ(inv.aggregate.clusters, 3);
  EXPECT_EQ(inv.aggregate.context, hnas::aggregate::kContextAll);
  EXPECT_EQ(inv.aggregate.fallback, hnas::aggregate::Fallback::Context);
  EXPECT_DOUBLE_EQ(inv.aggregate.top_fraction, 0.25);
  EXPECT_TRUE(inv.aggregate.partial);
  EXPECT_TRUE(static_cast<bool>(inv.aggregate.search_options));
  EXPECT_NE(error_of({"aggregate"}).find("--run-dir is required"), std::string::npos);
  EXPECT_NE(error_of({"aggregate", "--run-dir", "r", "--aggregate.context=two"}).find("aggregate.context = two"),
            std::string::npos);
  EXPECT_NE(error_of({"aggregate", "--run-dir", "r", "--aggregate.clusters=0"}).find("aggregate.clusters"),
            std::string::npos);
  EXPECT_NE(error_of({"aggregate", "--run-dir", "r", "--aggregate.top_fraction=0"}).find("aggregate.top_fraction"),
            std::string::npos);
  EXPECT_NE(error_of({"aggregate", "--run-dir", "r", "--model.d_model=8"}).find("model.d_model"), std::string::npos);
}

TEST(Aggregate, the_recorded_search_configuration_gives_back_the_search_options) {
  hnas::testing::TempDir dir;
  const auto ini =
      write_ini(dir, "[search]\nstrategy = random\nnum_layers = 5\nmax_evaluations = 7\n[mad]\nepochs = 3\n");
  const auto original = parse({"search", "--config", ini, "--run-dir", dir.file("run")});
  // A key of another hnas version in the record is ignored, not an error.
  const auto again = hnas::cli::search_options_from_config(original.job.effective_ini + "[future]\nkey = 1\n");
  EXPECT_EQ(again.strategy.kind, hnas::search::StrategyKind::Random);
  EXPECT_EQ(again.strategy.space.num_layers, 5);
  EXPECT_EQ(again.strategy.max_evaluations, 7);
  EXPECT_EQ(again.evaluation.mad.epochs, 3);
  EXPECT_EQ(again.evaluation.shape.d_model, original.search.evaluation.shape.d_model);
}

TEST(Extrapolate, presets_shortcuts_overrides_and_custom_targets) {
  const auto inv = parse({"extrapolate", "--arch", "A2M4", "--target", "350M", "--method=stretch"});
  ASSERT_EQ(inv.command, Command::Extrapolate);
  ASSERT_TRUE(inv.extrapolate.arch.has_value());
  EXPECT_EQ(inv.extrapolate.arch->to_string(), "AAMMMM");
  EXPECT_EQ(inv.extrapolate.target.name, "350M");
  EXPECT_EQ(inv.extrapolate.target.blocks, 14);
  EXPECT_EQ(inv.extrapolate.method, hnas::extrapolate::MethodChoice::Stretch);
  const auto longer =
      parse({"extrapolate", "--arch", "AM", "--extrapolate.blocks=20", "--extrapolate.context_length=2048"});
  EXPECT_EQ(longer.extrapolate.target.name, "1B");
  EXPECT_EQ(longer.extrapolate.target.blocks, 20);
  EXPECT_EQ(longer.extrapolate.target.context_length, 2048);
  const auto custom =
      parse({"extrapolate", "--arch", "AM", "--target", "custom", "--extrapolate.blocks=2", "--extrapolate.d_model=64",
             "--extrapolate.mlp_hidden=128", "--extrapolate.heads=4", "--extrapolate.kv_heads=2",
             "--extrapolate.head_dim=16", "--extrapolate.vocab_size=100", "--extrapolate.tie_embeddings=false"});
  EXPECT_EQ(custom.extrapolate.target.shape.d_model, 64);
  EXPECT_FALSE(custom.extrapolate.target.shape.tie_embeddings);
  EXPECT_NE(error_of({"extrapolate", "--arch", "AM", "--target", "5B"}).find("unknown target \"5B\""),
            std::string::npos);
  EXPECT_NE(error_of({"extrapolate", "--arch", "AM", "--target", "custom"}).find("needs extrapolate.blocks"),
            std::string::npos);
  EXPECT_NE(error_of({"extrapolate", "--arch", "AM", "--extrapolate.kv_heads=5"}).find("kv_heads"), std::string::npos);
  EXPECT_NE(error_of({"extrapolate"}).find("give --arch ARCH, or --run-dir DIR"), std::string::npos);
  const auto bad_arch = error_of({"extrapolate", "--arch", "AAZM"});
  EXPECT_NE(bad_arch.find("unknown primitive at position 3"), std::string::npos);
  EXPECT_EQ(bad_arch.find('\n'), std::string::npos) << "one line: " << bad_arch;
}

TEST(Pretrain, keys_parse_and_explicit_architectures_take_the_extrapolate_target) {
  hnas::testing::TempDir dir;
  const std::string shard = dir.file("a.bin");
  std::ofstream(shard) << "x";
  const auto inv =
      parse({"pretrain", "--run-dir", "r", "--arch", "AAMM", "A2M2", "--target", "350M", "--pretrain.data", shard,
             "--pretrain.tokens=1000000", "--pretrain.decay_shape=1-sqrt", "--pretrain.schedule=cosine"});
  ASSERT_EQ(inv.command, Command::Pretrain);
  ASSERT_EQ(inv.pretrain.archs.size(), 2u);
  EXPECT_EQ(inv.pretrain.archs[1].to_string(), "AAMM");
  EXPECT_EQ(inv.pretrain.target.name, "350M");
  EXPECT_EQ(inv.pretrain.target.shape.d_model, 1536);
  EXPECT_EQ(inv.pretrain.tokens, 1000000);
  EXPECT_EQ(inv.pretrain.schedule.kind, hnas::train::ScheduleKind::Cosine);
  EXPECT_EQ(inv.pretrain.schedule.decay_shape, hnas::train::DecayShape::OneMinusSqrt);
  EXPECT_NE(error_of({"pretrain", "--pretrain.data", shard, "--pretrain.tokens=1"}).find("--run-dir is required"),
            std::string::npos);
  EXPECT_NE(error_of({"pretrain", "--run-dir", "r", "--pretrain.data", shard}).find("pretrain.tokens is required"),
            std::string::npos);
  EXPECT_NE(error_of({"pretrain", "--run-dir", "r", "--pretrain.tokens=5"}).find("pretrain.data is required"),
            std::string::npos);
  EXPECT_NE(error_of({"pretrain", "--run-dir", "r", "--pretrain.data", shard, "--pretrain.tokens=5",
                      "--pretrain.decay_shape=sqrt"})
                .find("pretrain.decay_shape"),
            std::string::npos);
}

TEST(Configuration, one_file_configures_every_command_and_each_takes_its_sections) {
  hnas::testing::TempDir dir;
  const auto ini = write_ini(dir, "[extrapolate]\ntarget = 3B\n[pretrain]\ntokens = 5\n[aggregate]\nclusters = 3\n");
  EXPECT_EQ(parse({"extrapolate", "--config", ini, "--arch", "AM"}).extrapolate.target.name, "3B");
  EXPECT_EQ(parse({"aggregate", "--config", ini, "--run-dir", "r"}).aggregate.clusters, 3);
  const auto typo = write_ini(dir, "[extrapolate]\ntarget = 3B\n[pretrain]\ntokenz = 5\n");
  EXPECT_NE(error_of({"extrapolate", "--config", typo, "--arch", "AM"}).find("pretrain.tokenz"), std::string::npos);
}

// Every key a command reads is documented in inputs/README.md, and every key documented
// there exists: the reference cannot drift from the code.
std::vector<std::string> documented_keys() {
  std::ifstream in(HNAS_SOURCE_DIR "/inputs/README.md");
  EXPECT_TRUE(in.good());
  std::vector<std::string> keys;
  std::string section;
  bool in_keys = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("## ", 0) == 0) {
      in_keys = line == "## Top level" || line.rfind("## `[", 0) == 0;
      section = line.rfind("## `[", 0) == 0 ? line.substr(5, line.find(']') - 5) + "." : "";
      continue;
    }
    if (!in_keys || line.rfind("| `", 0) != 0) continue;
    const std::string cell = line.substr(1, line.find('|', 1) - 1);  // `a`, `b`, `c`
    for (size_t at = cell.find('`'); at != std::string::npos; at = cell.find('`', cell.find('`', at + 1) + 1))
      keys.push_back(section + cell.substr(at + 1, cell.find('`', at + 1) - at - 1));
  }
  return keys;
}

TEST(Documentation, inputs_readme_documents_exactly_the_declared_keys) {
  const auto documented = documented_keys();
  std::vector<std::string> declared;
  for (auto command : {Command::Evaluate, Command::Search, Command::Aggregate, Command::Extrapolate, Command::Pretrain,
                       Command::Generate})
    for (const auto& key : hnas::cli::declared_keys(command))
      if (std::find(declared.begin(), declared.end(), key.key) == declared.end()) declared.push_back(key.key);
  for (const auto& key : declared)
    EXPECT_NE(std::find(documented.begin(), documented.end(), key), documented.end())
        << key << " is declared but not documented in inputs/README.md";
  for (const auto& key : documented)
    EXPECT_NE(std::find(declared.begin(), declared.end(), key), declared.end())
        << key << " is documented in inputs/README.md but no command reads it";
  EXPECT_GT(documented.size(), 60u);
}

TEST(Options, run_parses_every_stage_from_one_configuration_each_with_only_its_keys) {
  hnas::testing::TempDir dir;
  const std::string shard = dir.file("t.bin");
  std::ofstream(shard) << "x";
  const auto config = write_ini(dir,
                                "task = memorization\n[mad]\nepochs = 3\n[search]\nnum_layers = 4\n"
                                "[aggregate]\nclusters = 2\n[extrapolate]\ntarget = 350M\n"
                                "[pretrain]\ntokens = 4096\n");
  const auto inv = parse({"run", "--config", config, "--run-dir", "r", "--pretrain.data", shard, "--method", "stretch",
                          "--search.seed=7"});
  ASSERT_EQ(inv.command, Command::Run);
  ASSERT_EQ(inv.stages.size(), 5u);
  const std::vector<Command> order{Command::Search, Command::Aggregate, Command::Extrapolate, Command::Pretrain,
                                   Command::Generate};
  for (size_t i = 0; i < order.size(); ++i) {
    EXPECT_EQ(inv.stages[i].command, order[i]);
    EXPECT_EQ(inv.stages[i].job.run_dir, "r");
  }
  EXPECT_EQ(inv.stages[0].search.strategy.space.num_layers, 4);
  EXPECT_EQ(inv.stages[0].search.strategy.seed, 7u);
  EXPECT_EQ(inv.stages[0].search.evaluation.mad.epochs, 3);
  EXPECT_EQ(inv.stages[1].aggregate.clusters, 2);
  EXPECT_EQ(inv.stages[2].extrapolate.target.name, "350M");
  EXPECT_EQ(inv.stages[2].extrapolate.method, hnas::extrapolate::MethodChoice::Stretch);
  EXPECT_EQ(inv.stages[3].pretrain.tokens, 4096);
  EXPECT_EQ(inv.stages[3].pretrain.train_paths, std::vector<std::string>{shard});
  EXPECT_FALSE(inv.stages[4].generate.prompt.empty());  // the inference stage's timing prompt
  EXPECT_EQ(inv.stages[4].generate.run_dir, "r");
  // Each stage records only its own keys: the search's configuration has no [pretrain],
  // so a search started by hnas search resumes under hnas run and back.
  const auto& search_ini = inv.stages[0].job.effective_ini;
  EXPECT_EQ(search_ini.find("[pretrain]"), std::string::npos);
  EXPECT_NE(search_ini.find("[search]"), std::string::npos);
  EXPECT_EQ(inv.stages[3].job.effective_ini.find("[search]"), std::string::npos);
  // The run's own configuration holds every stage's keys and loads back.
  EXPECT_NE(inv.job.effective_ini.find("[pretrain]"), std::string::npos);
  EXPECT_NE(inv.job.effective_ini.find("[search]"), std::string::npos);
  const auto reloaded = write_ini(dir, inv.job.effective_ini);
  EXPECT_EQ(parse({"run", "--config", reloaded, "--run-dir", "r"}).stages[0].job.effective_ini, search_ini);
}

TEST(Options, run_refuses_what_it_chooses_itself_naming_the_key) {
  hnas::testing::TempDir dir;
  const std::string shard = dir.file("t.bin");
  std::ofstream(shard) << "x";
  const std::vector<std::string> base{"run", "--run-dir", "r", "--pretrain.data", shard, "--pretrain.tokens=64"};
  auto with = [&](std::vector<std::string> extra) {
    auto args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return error_of(args);
  };
  EXPECT_NE(with({"--arch", "AMAM"}).find("hnas run chooses the architectures"), std::string::npos);
  EXPECT_NE(with({"--generate.checkpoint", "x.h5"}).find("generate.checkpoint"), std::string::npos);
  EXPECT_NE(with({"--pretrain.lrr=1"}).find("pretrain.lrr"), std::string::npos);
  EXPECT_NE(error_of({"run", "--pretrain.data", shard, "--pretrain.tokens=64"}).find("--run-dir is required"),
            std::string::npos);
  EXPECT_NE(error_of({"run", "--run-dir", "r"}).find("pretrain.data is required"), std::string::npos);
  EXPECT_TRUE(error_of(base).empty());
}

}  // namespace
