// SPDX-License-Identifier: Apache-2.0
#include "hnas/cli/options.hpp"

#include <boost/program_options.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "hnas/core/check.hpp"
#include "hnas/core/deadline.hpp"
#include "hnas/core/files.hpp"
#include "hnas/core/log.hpp"
#include "hnas/extrapolate/extrapolate.hpp"
#include "hnas/extrapolate/extrapolate_stage.hpp"
#include "option_table.hpp"
#include "sections.hpp"

namespace po = boost::program_options;

namespace hnas::cli {
namespace {

const char* kUsage =
    "usage: hnas <command> [options]\n"
    "\n"
    "commands:\n"
    "  evaluate   train one architecture on MAD tasks (default) or a token dataset and\n"
    "             print its metrics (data-parallel over the ranks under mpirun), e.g.\n"
    "               hnas evaluate --arch AAMMMM --task in-context-recall\n"
    "               hnas evaluate --arch A2M4 --data shards/train_*.bin --config inputs/tokens_bytes.ini\n"
    "  search     search architectures (strategy over a space; teams of ranks evaluate\n"
    "             candidates data-parallel); results in RUN_DIR/results.h5; rerun resumes:\n"
    "               mpirun -np 4 hnas search --config inputs/search_cpu.ini --run-dir runs/s1\n"
    "  aggregate  combine the search's top K-means cluster layer by layer (N_c clustering),\n"
    "             evaluate the aggregate as the search would, record it in /aggregate:\n"
    "               mpirun -np 2 hnas aggregate --run-dir runs/s1\n"
    "  extrapolate  scale an architecture to a target size (stacking or stretching) and\n"
    "             compare it with the target's Llama baseline (/extrapolate with --run-dir):\n"
    "               hnas extrapolate --arch AAMMMM --method stack --target 1B\n"
    "               hnas extrapolate --run-dir runs/s1 --target 350M\n"
    "  pretrain   pre-train the extrapolated winner and the baseline on token shards,\n"
    "             data-parallel over the ranks, with HDF5 checkpoints; rerun resumes:\n"
    "               mpirun -np 4 hnas pretrain --run-dir runs/s1 --pretrain.data shards/train_*.bin\n"
    "  generate   text from a checkpoint: prefill, then decoding with a KV cache:\n"
    "               hnas generate --checkpoint runs/s1/checkpoints/winner --prompt \"The \"\n"
    "  run        the whole pipeline in one job: search, aggregate, extrapolate, pretrain,\n"
    "             inference timing and the summary table (/summary); finished stages are\n"
    "             skipped, the one in progress resumes:\n"
    "               mpirun -np 2 hnas run --config inputs/quickstart_run.ini --run-dir runs/q\n"
    "\n"
    "Every key of the INI file (--config FILE) can be given on the command line as\n"
    "--section.key=value, which overrides the file; `hnas <command> --help` lists them.\n"
    "Exit codes: 0 done, 2 bad usage, configuration or input, 75 stopped early\n"
    "(resumable), other non-zero internal error.\n";

// What the command line holds besides the keys.
struct Switches {
  bool help = false;
  bool dry_run = false;
  bool partial = false;
  std::string config;
  std::string run_dir;
  std::string deadline;
  int plan_ranks = 0;
};

// One table of the keys `s.command` reads, section by section.
void declare_keys(OptionTable& table, Settings& s) {
  switch (s.command) {
    case Command::Aggregate:
      declare_aggregate(table, s);
      declare_run(table, s);
      return;
    case Command::Extrapolate:
      declare_top_level(table, s);
      declare_extrapolate(table, s);
      return;
    case Command::Pretrain:
      declare_top_level(table, s);
      declare_pretrain(table, s);
      declare_target(table, s);
      declare_run(table, s);
      return;
    case Command::Generate:
      declare_generate(table, s);
      declare_run(table, s);
      return;
    case Command::Run:  // one file configures every stage; each stage takes its sections
      declare_top_level(table, s);
      declare_model(table, s);
      declare_train(table, s);
      declare_mad(table, s);
      declare_tokens(table, s);
      declare_run(table, s);
      declare_search(table, s);
      declare_debug(table, s);
      declare_aggregate(table, s);
      declare_extrapolate(table, s);
      declare_pretrain(table, s);
      declare_generate(table, s);
      return;
    default:
      break;
  }
  declare_top_level(table, s);
  declare_model(table, s);
  declare_train(table, s);
  declare_mad(table, s);
  declare_tokens(table, s);
  declare_run(table, s);
  if (s.command == Command::Search) {
    declare_search(table, s);
    declare_debug(table, s);
  }
}

const char* command_name(Command command) {
  switch (command) {
    case Command::Search:
      return "search";
    case Command::Aggregate:
      return "aggregate";
    case Command::Extrapolate:
      return "extrapolate";
    case Command::Pretrain:
      return "pretrain";
    case Command::Generate:
      return "generate";
    case Command::Run:
      return "run";
    default:
      return "evaluate";
  }
}

po::options_description describe(const OptionTable& table, Command command, Switches& switches) {
  po::options_description d(std::string("hnas ") + command_name(command) + " options");
  d.add_options()("help,h", po::bool_switch(&switches.help), "print this help");
  d.add_options()("config", po::value<std::string>(&switches.config), "INI file with any of the keys below");
  d.add_options()("dry-run", po::bool_switch(&switches.dry_run), "validate, print the plan, train and write nothing");
  d.add_options()("ranks", po::value<int>(&switches.plan_ranks),
                  "with --dry-run: plan for this many ranks (default: this job's)");
  d.add_options()("deadline", po::value<std::string>(&switches.deadline),
                  "stop with exit code 75 before this time: 2026-12-03T18:00:00 (local; Z or +01:00 for a zone), "
                  "@UNIX_SECONDS, or a duration from now (3600, 90m, 1.5h, 1:30:00, 1-12:00:00); none: no deadline. "
                  "Default: the end of the SLURM job (SLURM_JOB_END_TIME), if any");
  if (command == Command::Search)
    d.add_options()("run-dir", po::value<std::string>(&switches.run_dir),
                    "run directory (results.h5); rerunning on it resumes");
  if (command == Command::Aggregate) {
    d.add_options()("run-dir", po::value<std::string>(&switches.run_dir),
                    "run directory of the search (results.h5); /aggregate is written there");
    d.add_options()("partial", po::bool_switch(&switches.partial),
                    "aggregate a search that has not completed (said so in the output and the record)");
  }
  if (command == Command::Extrapolate)
    d.add_options()("run-dir", po::value<std::string>(&switches.run_dir),
                    "run directory: take its aggregate (unless --arch) and write /extrapolate there");
  if (command == Command::Generate)
    d.add_options()("run-dir", po::value<std::string>(&switches.run_dir),
                    "without --checkpoint: time every model of RUN_DIR/checkpoints, write /inference");
  if (command == Command::Pretrain)
    d.add_options()("run-dir", po::value<std::string>(&switches.run_dir),
                    "run directory: its /extrapolate models (unless --arch); checkpoints and /pretrain there");
  if (command == Command::Run)
    d.add_options()("run-dir", po::value<std::string>(&switches.run_dir),
                    "run directory of every stage (results.h5, checkpoints); rerunning continues where it stopped");
  table.describe_to(d);
  return d;
}

// A word that is not an option: say what the user probably meant.
std::string stray_word_message(const std::string& word) {
  const auto ends_with = [&](const char* suffix) {
    const std::string s(suffix);
    return word.size() >= s.size() && word.compare(word.size() - s.size(), s.size(), s) == 0;
  };
  std::string hint = "options are written --key value or --section.key=value";
  if (ends_with(".ini"))
    hint = "a configuration file is given as --config " + printable(word);
  else if (ends_with(".bin") || ends_with(".h5") || word.find(".h5:") != std::string::npos)
    hint = "token shards follow --data (or --tokens.valid), all of them together: --data a.bin b.bin";
  else if (word.find_first_not_of("AM0123456789") == std::string::npos)
    hint = "an architecture is given as --arch " + printable(word);
  return "unexpected word \"" + printable(word) + "\" on the command line; " + hint;
}

void read_command_line(const std::vector<std::string>& args, const po::options_description& description,
                       po::variables_map& values) {
  const auto parsed = po::command_line_parser(args).options(description).run();
  for (const auto& option : parsed.options)
    if (option.position_key >= 0 || option.string_key.empty())
      throw ConfigError(stray_word_message(option.value.empty() ? "" : option.value.front()));
  po::store(parsed, values);  // first: the command line wins over the file
}

// Whether `key` is read by some command: one INI file may configure the whole pipeline,
// and each command takes its own sections from it.
bool key_of_some_command(const std::string& key) {
  for (auto command : {Command::Evaluate, Command::Search, Command::Aggregate, Command::Extrapolate, Command::Pretrain,
                       Command::Generate})
    for (const auto& info : declared_keys(command))
      if (info.key == key) return true;
  return false;
}

// `source` names the text in messages; a recorded configuration (`recorded`) may hold
// keys of another hnas version, which are ignored. Otherwise a key no command reads is an
// error, and the keys of other commands are skipped.
void read_config_text(std::string content, const std::string& source, bool recorded,
                      const po::options_description& description, po::variables_map& values) {
  if (content.rfind("\xEF\xBB\xBF", 0) == 0) content.erase(0, 3);  // a UTF-8 byte-order mark from an editor
  std::istringstream in(content);
  try {
    auto parsed = po::parse_config_file(in, description, /*allow_unregistered=*/true);
    for (const auto& option : parsed.options)
      if (option.unregistered && !recorded && !key_of_some_command(option.string_key))
        throw ConfigError("unrecognised option '" + printable(option.string_key) + "' (in " + source + ")");
    po::store(parsed, values);
  } catch (const po::error& e) {
    throw ConfigError(std::string(e.what()) + " (in " + source + ")");
  }
}

void read_config_file(const std::string& path, const po::options_description& description, po::variables_map& values) {
  require_readable_file(path, "config file");
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  HNAS_CHECK(file.good() || file.eof(), InputError, "config file " << printable(path) << " cannot be read");
  read_config_text(text.str(), printable(path), false, description, values);
}

void check_all(Settings& s, Problems& problems) {
  if (s.command == Command::Run) {
    check_top_level(s, problems);
    check_run(s, problems);
    check_model(s, problems);
    check_train(s, problems);
    check_tokens(s, problems);
    check_search(s, problems);
    check_aggregate(s, problems);
    check_extrapolate(s, problems);
    check_pretrain(s, problems);
    check_generate(s, problems);
    if (problems.empty()) check_mad(s, problems);
    return;
  }
  if (s.command == Command::Aggregate) {
    check_aggregate(s, problems);
    check_run(s, problems);
    return;
  }
  if (s.command == Command::Extrapolate) {
    check_top_level(s, problems);
    check_extrapolate(s, problems);
    return;
  }
  if (s.command == Command::Pretrain) {
    check_run(s, problems);
    check_pretrain(s, problems);
    return;
  }
  if (s.command == Command::Generate) {
    check_run(s, problems);
    check_generate(s, problems);
    return;
  }
  check_top_level(s, problems);
  check_run(s, problems);
  check_model(s, problems);
  check_train(s, problems);
  check_tokens(s, problems);
  if (s.command == Command::Search) check_search(s, problems);
  if (problems.empty()) check_mad(s, problems);  // builds the settings: only on an otherwise valid configuration
}

[[noreturn]] void throw_problems(const Problems& problems) {
  std::string message = problems.size() == 1 ? problems[0] : "invalid configuration:";
  if (problems.size() > 1)
    for (const auto& p : problems) message += "\n  - " + p;
  throw ConfigError(message);
}

// `hnas extrapolate --target 1B --method stack` (and `hnas pretrain --target`): the keys
// users type most, without their section.
std::vector<std::string> expand_shortcuts(Command command, std::vector<std::string> args) {
  std::vector<std::string> keys;
  std::string section = "extrapolate";
  if (command == Command::Extrapolate || command == Command::Run) keys = {"target", "method"};
  if (command == Command::Pretrain) keys = {"target"};
  if (command == Command::Generate) keys = {"checkpoint", "prompt"}, section = "generate";
  for (auto& arg : args)
    for (const auto& key : keys) {
      const std::string flag = "--" + key;
      if (arg == flag || arg.rfind(flag + "=", 0) == 0) arg = "--" + section + "." + arg.substr(2);
    }
  return args;
}

Invocation parse_command(Command command, const std::vector<std::string>& args, const std::string* recorded_config);

// hnas run's stages: each stage's own command parsed from the run's effective
// configuration, so that each records (and on resume compares) only its own keys, as
// when it runs as its own command.
std::vector<Invocation> pipeline_stages(const pipeline::JobOptions& run) {
  std::vector<std::string> args{"--run-dir", run.run_dir};
  if (run.dry_run) args.push_back("--dry-run");
  if (run.plan_ranks > 0) args.insert(args.end(), {"--ranks", std::to_string(run.plan_ranks)});
  std::vector<Invocation> stages;
  for (auto command : {Command::Search, Command::Aggregate, Command::Extrapolate, Command::Pretrain, Command::Generate})
    stages.push_back(parse_command(command, args, &run.effective_ini));
  return stages;
}

// --deadline, or else the SLURM job's end; "none" for neither.
void resolve_deadline(const std::string& text, pipeline::JobOptions& job) {
  const auto unix_seconds = [](WallTime t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); };
  if (text == "none") return;
  if (!text.empty()) {
    job.deadline_unix = unix_seconds(parse_deadline(text, std::chrono::system_clock::now()));
    job.deadline_source = "--deadline " + printable(text);
  } else if (const auto end = slurm_job_end_time()) {
    job.deadline_unix = unix_seconds(*end);
    job.deadline_source = "the SLURM job's end, SLURM_JOB_END_TIME";
  }
}

// `recorded_config`: read this recorded configuration (keys of other commands or hnas
// versions ignored) instead of a --config file.
Invocation parse_command(Command command, const std::vector<std::string>& args, const std::string* recorded_config) {
  Settings s = default_settings(command);
  OptionTable table;
  declare_keys(table, s);
  Switches switches;
  const auto description = describe(table, command, switches);
  po::variables_map values;
  const std::string name = command_name(command);
  try {
    read_command_line(expand_shortcuts(command, args), description, values);
    if (recorded_config)
      read_config_text(*recorded_config, "the recorded configuration", true, description, values);
    else if (values.count("config"))
      read_config_file(values["config"].as<std::string>(), description, values);
    po::notify(values);
  } catch (const po::error& e) {
    throw ConfigError(std::string(e.what()) + "; try hnas " + name + " --help");
  }
  Invocation invocation;
  if (switches.help) {
    std::ostringstream out;
    out << kUsage << "\n" << description;
    invocation.help = out.str();
    return invocation;
  }
  Problems problems;
  table.assign(values, problems);
  check_all(s, problems);
  if (command == Command::Search && switches.run_dir.empty() && !recorded_config)
    problems.push_back("--run-dir is required (the directory of results.h5; rerunning resumes)");
  if (command == Command::Generate && switches.run_dir.empty() && s.generate.checkpoint.empty())
    problems.push_back("give --checkpoint FILE or DIR, or --run-dir DIR to time every model of its checkpoints");
  if (command == Command::Pretrain && switches.run_dir.empty())
    problems.push_back("--run-dir is required (checkpoints and results.h5 go there; rerunning resumes)");
  if (command == Command::Run && switches.run_dir.empty())
    problems.push_back("--run-dir is required (every stage's output goes there; rerunning continues)");
  if (command == Command::Aggregate && switches.run_dir.empty())
    problems.push_back("--run-dir is required (the run directory of the search to aggregate)");
  if (command == Command::Extrapolate && switches.run_dir.empty() && s.arch.empty())
    problems.push_back("give --arch ARCH, or --run-dir DIR to extrapolate the aggregate of a search");
  if (!problems.empty()) throw_problems(problems);

  invocation.command = command;
  invocation.job = s.job;
  invocation.job.run_dir = switches.run_dir;
  invocation.job.dry_run = switches.dry_run;
  resolve_deadline(switches.deadline, invocation.job);
  HNAS_CHECK(switches.plan_ranks >= 0, ConfigError, "--ranks must be at least 1, got " << switches.plan_ranks);
  HNAS_CHECK(switches.plan_ranks == 0 || switches.dry_run, ConfigError,
             "--ranks plans a job of that size and is for --dry-run only; launch the ranks with mpirun or srun");
  invocation.job.plan_ranks = switches.plan_ranks;
  invocation.job.effective_ini = table.effective_ini();
  invocation.job.keys_free_on_resume = table.keys_free_on_resume();
  for (const auto& key : table.keys()) invocation.job.key_defaults[key.key] = key.default_value;
  invocation.evaluate = {s.genome, s.evaluation};
  s.search.evaluation = s.evaluation;
  invocation.search = s.search;
  s.aggregate.partial = switches.partial;
  s.aggregate.search_options = search_options_from_config;
  invocation.aggregate = s.aggregate;
  invocation.extrapolate = s.extrapolate;
  invocation.pretrain = s.pretrain;
  invocation.generate = s.generate;
  invocation.generate.run_dir = switches.run_dir;
  if (command == Command::Run) invocation.stages = pipeline_stages(invocation.job);
  return invocation;
}

}  // namespace

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::string current;
  for (char c : text) {
    if (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (!current.empty()) out.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  if (!current.empty()) out.push_back(current);
  return out;
}

Invocation parse_command_line(int argc, const char* const* argv) {
  Invocation invocation;
  invocation.help = kUsage;
  if (argc < 2) {  // no command at all: usage, and a usage error for scripts
    invocation.usage_error = true;
    return invocation;
  }
  const std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") return invocation;
  if (command == "--version") {
    invocation.command = Command::Version;
    return invocation;
  }
  for (auto c : {Command::Evaluate, Command::Search, Command::Aggregate, Command::Extrapolate, Command::Pretrain,
                 Command::Generate, Command::Run})
    if (command == command_name(c)) return parse_command(c, std::vector<std::string>(argv + 2, argv + argc), nullptr);
  throw ConfigError(
      "unknown command \"" + printable(command) +
      "\"; the commands are evaluate, search, aggregate, extrapolate, pretrain, generate and run (hnas --help)");
}

namespace {

// hnas run --dry-run plans pre-training before a winner exists: the target's baseline and
// the extrapolations of the all-attention and all-MLP sources of the search's depth,
// whose parameters, FLOPs and memory bound those of any winner of the same depth.
pretrain::PretrainOptions planned_pretraining(const std::vector<Invocation>& parts) {
  const auto& strategy = parts[0].search.strategy;
  const auto& extrapolation = parts[2].extrapolate;
  auto o = parts[3].pretrain;
  o.target = extrapolation.target;
  o.archs = {extrapolate::baseline_genome(o.target)};
  const auto depth = static_cast<size_t>(std::max(strategy.space.num_layers, strategy.target_layers));
  for (const auto primitive : strategy.space.primitives) {
    const arch::Genome source(std::vector<arch::Primitive>(depth, primitive));
    const auto method = extrapolate::resolve_method(extrapolation.method, depth);
    const auto result = extrapolate::extrapolate(source, method, o.target).result;
    if (std::find(o.archs.begin(), o.archs.end(), result) == o.archs.end()) o.archs.push_back(result);
  }
  log::info(
      log::format("hnas run --dry-run: the search's plan, then pre-training planned for the %s baseline and "
                  "the %zu-layer all-attention and all-MLP sources extrapolated to it, which bound the winner's "
                  "parameters, FLOPs and memory",
                  o.target.name.c_str(), depth));
  return o;
}

}  // namespace

std::vector<std::unique_ptr<pipeline::Stage>> stages_of(const Invocation& invocation) {
  std::vector<std::unique_ptr<pipeline::Stage>> stages;
  const auto& own = invocation.job;
  switch (invocation.command) {
    case Command::Evaluate:
      stages.push_back(pipeline::make_evaluate_stage(invocation.evaluate));
      break;
    case Command::Search:
      stages.push_back(pipeline::make_search_stage(invocation.search, own));
      break;
    case Command::Aggregate:
      stages.push_back(pipeline::make_aggregate_stage(invocation.aggregate, own));
      break;
    case Command::Extrapolate:
      stages.push_back(pipeline::make_extrapolate_stage(invocation.extrapolate, own));
      break;
    case Command::Pretrain:
      stages.push_back(pipeline::make_pretrain_stage(invocation.pretrain, own));
      break;
    case Command::Generate:
      stages.push_back(pipeline::make_generate_stage(invocation.generate));
      break;
    case Command::Run: {
      const auto& parts = invocation.stages;
      if (invocation.job.dry_run) {  // the search, then pre-training of models that bound the winner
        for (auto& stage : stages_of(parts[0])) stages.push_back(std::move(stage));
        stages.push_back(pipeline::make_pretrain_stage(planned_pretraining(parts), parts[3].job));
        break;
      }
      for (size_t i = 0; i < parts.size(); ++i) {
        if (parts[i].command == Command::Generate)
          stages.push_back(pipeline::make_inference_stage(parts[i].generate));
        else
          for (auto& stage : stages_of(parts[i])) stages.push_back(std::move(stage));
      }
      stages.push_back(pipeline::make_summary_stage());
      break;
    }
    default:
      break;
  }
  return stages;
}

search::SearchOptions search_options_from_config(const std::string& ini) {
  return parse_command(Command::Search, {}, &ini).search;
}

std::vector<KeyInfo> declared_keys(Command command) {
  Settings s = default_settings(command);
  OptionTable table;
  declare_keys(table, s);
  return table.keys();
}

}  // namespace hnas::cli
