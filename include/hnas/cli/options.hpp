// SPDX-License-Identifier: Apache-2.0
// Command line and INI configuration -> the typed options of the pipeline's stages. The
// INI file is the interface ([section] key = value); any key can be overridden on the
// command line as --section.key=value. Unknown keys, bad values and stray words are
// rejected with the culprit named. Nothing outside cli/ sees Boost.ProgramOptions, and
// nothing below cli/ includes it: cli sits on top of the modules it configures.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "hnas/pipeline/run_context.hpp"
#include "hnas/pipeline/stage.hpp"
#include "hnas/search/search_job.hpp"

namespace hnas::cli {

enum class Command { Help, Version, Evaluate, Search, Aggregate, Extrapolate, Pretrain, Generate, Run };

struct Invocation {
  Command command = Command::Help;
  std::string help;          ///< usage text for Command::Help
  bool usage_error = false;  ///< Help because no command was given: exit code 2
  pipeline::JobOptions job;
  pipeline::EvaluateOptions evaluate;           ///< Command::Evaluate
  search::SearchOptions search;                 ///< Command::Search
  aggregate::AggregateOptions aggregate;        ///< Command::Aggregate
  extrapolate::ExtrapolateOptions extrapolate;  ///< Command::Extrapolate
  pretrain::PretrainOptions pretrain;           ///< Command::Pretrain
  generate::GenerateOptions generate;           ///< Command::Generate
  /// Command::Run: the pipeline's commands (search, aggregate, extrapolate, pretrain,
  /// generate), each parsed from the run's effective configuration with --run-dir.
  std::vector<Invocation> stages;
};

/// Parses argv (argv[1] is the command). Throws ConfigError (or InputError for an
/// unreadable config file) with every problem found, each naming its key or word.
/// Rank-local and deterministic: every rank parsing the same argv gets the same result.
Invocation parse_command_line(int argc, const char* const* argv);

/// The options of the search whose effective configuration (as recorded in
/// /provenance/config) is `ini`: what later stages use to evaluate as the search did.
/// Keys this hnas does not know are ignored (a record of another version). Rank-local.
/// Throws ConfigError when the recorded values are invalid.
search::SearchOptions search_options_from_config(const std::string& ini);

/// The stages an invocation runs, in order.
std::vector<std::unique_ptr<pipeline::Stage>> stages_of(const Invocation& invocation);

/// One configuration key as its declaration gives it (for --help and the docs test).
struct KeyInfo {
  std::string key;            ///< "section.key", or "key" at the top level
  std::string type;           ///< int, float, bool, string, list, or the choices a/b/c
  std::string default_value;  ///< as INI text
  std::string doc;
  bool free_on_resume = false;  ///< a resumed run may change it
};

/// Every key `command` (a stage command) reads, in declaration order.
std::vector<KeyInfo> declared_keys(Command command);

/// Splits "a, b c" into {"a", "b", "c"} (commas and/or white space).
std::vector<std::string> split_list(const std::string& text);

}  // namespace hnas::cli
