// SPDX-License-Identifier: Apache-2.0
#include "hnas/cli/options.hpp"

#include <boost/program_options.hpp>

#include <fstream>
#include <sstream>

#include "hnas/core/check.hpp"
#include "hnas/core/files.hpp"
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
    "\n"
    "Every key of the INI file (--config FILE) can be given on the command line as\n"
    "--section.key=value, which overrides the file; `hnas <command> --help` lists them.\n"
    "Exit codes: 0 done, 2 bad usage, configuration or input, 75 stopped early\n"
    "(resumable), other non-zero internal error.\n";

// What the command line holds besides the keys.
struct Switches {
  bool help = false;
  bool dry_run = false;
  std::string config;
  std::string run_dir;
};

// One table of the keys `s.command` reads, section by section.
void declare_keys(OptionTable& table, Settings& s) {
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

po::options_description describe(const OptionTable& table, Command command, Switches& switches) {
  po::options_description d(command == Command::Search ? "hnas search options" : "hnas evaluate options");
  d.add_options()("help,h", po::bool_switch(&switches.help), "print this help");
  d.add_options()("config", po::value<std::string>(&switches.config), "INI file with any of the keys below");
  d.add_options()("dry-run", po::bool_switch(&switches.dry_run), "validate, print the plan, train nothing");
  if (command == Command::Search)
    d.add_options()("run-dir", po::value<std::string>(&switches.run_dir),
                    "run directory (results.h5); rerunning on it resumes");
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

void read_config_file(const std::string& path, const po::options_description& description, po::variables_map& values) {
  require_readable_file(path, "config file");
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  HNAS_CHECK(file.good() || file.eof(), InputError, "config file " << printable(path) << " cannot be read");
  std::string content = text.str();
  if (content.rfind("\xEF\xBB\xBF", 0) == 0) content.erase(0, 3);  // a UTF-8 byte-order mark from an editor
  std::istringstream in(content);
  try {
    po::store(po::parse_config_file(in, description, /*allow_unregistered=*/false), values);
  } catch (const po::error& e) {
    throw ConfigError(std::string(e.what()) + " (in " + printable(path) + ")");
  }
}

void check_all(Settings& s, Problems& problems) {
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

Invocation parse_command(Command command, const std::vector<std::string>& args) {
  Settings s = default_settings(command);
  OptionTable table;
  declare_keys(table, s);
  Switches switches;
  const auto description = describe(table, command, switches);
  po::variables_map values;
  const std::string name = command == Command::Search ? "search" : "evaluate";
  try {
    read_command_line(args, description, values);
    if (values.count("config")) read_config_file(values["config"].as<std::string>(), description, values);
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
  if (command == Command::Search && switches.run_dir.empty())
    problems.push_back("--run-dir is required (the directory of results.h5; rerunning resumes)");
  if (!problems.empty()) throw_problems(problems);

  invocation.command = command;
  invocation.job = s.job;
  invocation.job.run_dir = switches.run_dir;
  invocation.job.dry_run = switches.dry_run;
  invocation.job.effective_ini = table.effective_ini();
  invocation.job.keys_free_on_resume = table.keys_free_on_resume();
  for (const auto& key : table.keys()) invocation.job.key_defaults[key.key] = key.default_value;
  invocation.evaluate = {s.genome, s.evaluation};
  s.search.evaluation = s.evaluation;
  invocation.search = s.search;
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
  HNAS_CHECK(command == "evaluate" || command == "search", ConfigError,
             "unknown command \"" << printable(command) << "\"; the commands are evaluate and search (hnas --help)");
  return parse_command(command == "search" ? Command::Search : Command::Evaluate,
                       std::vector<std::string>(argv + 2, argv + argc));
}

std::vector<std::unique_ptr<pipeline::Stage>> stages_of(const Invocation& invocation) {
  std::vector<std::unique_ptr<pipeline::Stage>> stages;
  if (invocation.command == Command::Evaluate) stages.push_back(pipeline::make_evaluate_stage(invocation.evaluate));
  if (invocation.command == Command::Search) stages.push_back(pipeline::make_search_stage(invocation.search));
  return stages;
}

std::vector<KeyInfo> declared_keys(Command command) {
  Settings s = default_settings(command);
  OptionTable table;
  declare_keys(table, s);
  return table.keys();
}

}  // namespace hnas::cli
