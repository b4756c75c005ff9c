// SPDX-License-Identifier: Apache-2.0
#include "hnas/cli/options.hpp"

#include <boost/program_options.hpp>

#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "hnas/core/check.hpp"
#include "hnas/core/log.hpp"

namespace po = boost::program_options;

namespace hnas::cli {
namespace {

std::string to_text(const std::string& v) { return v; }
std::string to_text(bool v) { return v ? "true" : "false"; }
std::string to_text(double v) { return log::format("%.10g", v); }
template <class T>
std::string to_text(T v) {
  return std::to_string(v);
}

// Every configurable key in one table: declared once, bound to its field, and printed
// from that field for the effective configuration.
class OptionTable {
 public:
  explicit OptionTable(const std::string& caption) : description_(caption) {}

  template <class T>
  void add(const std::string& key, T* field, const std::string& help) {
    description_.add_options()(key.c_str(), po::value<T>(field)->default_value(*field, to_text(*field)), help.c_str());
    entries_.push_back({key, [field] { return to_text(*field); }});
  }

  po::options_description& description() { return description_; }

  // Top-level keys first, then one [section] per dotted prefix, in declaration order.
  std::string effective_ini() const {
    std::ostringstream out;
    std::vector<std::string> sections{""};
    std::map<std::string, std::vector<std::string>> lines;
    for (const auto& e : entries_) {
      const auto dot = e.key.find('.');
      const std::string section = dot == std::string::npos ? "" : e.key.substr(0, dot);
      const std::string name = dot == std::string::npos ? e.key : e.key.substr(dot + 1);
      if (!lines.count(section) && !section.empty()) sections.push_back(section);
      lines[section].push_back(name + " = " + e.value());
    }
    for (const auto& section : sections) {
      if (!section.empty()) out << "\n[" << section << "]\n";
      for (const auto& line : lines[section]) out << line << "\n";
    }
    return out.str();
  }

 private:
  struct Entry {
    std::string key;
    std::function<std::string()> value;
  };
  po::options_description description_;
  std::vector<Entry> entries_;
};

// Raw values as the user wrote them; converted and validated into EvaluateOptions.
struct RawEvaluate {
  std::string config, arch, task = "in-context-recall", data, kernels = "fused", init = "auto", schedule = "cosine";
  std::string grad_clip = "auto", mad_settings = "baseline", learning_rates = "5e-4", weight_decays = "0", valid;
  bool dry_run = false;
  std::string device = "cpu";
  // hnas search
  std::string strategy = "bo", primitives = "AM", first, last;
};

std::vector<double> parse_numbers(const std::string& key, const std::string& text, std::vector<std::string>& problems) {
  std::vector<double> out;
  for (const auto& item : split_list(text)) {
    try {
      size_t used = 0;
      out.push_back(std::stod(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      problems.push_back(key + ": \"" + item + "\" is not a number");
    }
  }
  if (out.empty()) problems.push_back(key + " must list at least one value");
  return out;
}

const char* kUsage =
    "usage: hnas <command> [options]\n"
    "\n"
    "commands:\n"
    "  evaluate   train one architecture on MAD tasks (default) or a token dataset and\n"
    "             print its metrics, e.g.\n"
    "               hnas evaluate --arch AAMMMM --task in-context-recall\n"
    "               hnas evaluate --arch A2M4 --data shards/train_*.bin --config inputs/tokens.ini\n"
    "  search     search architectures (strategy over a space; teams of ranks evaluate\n"
    "             candidates data-parallel); results in RUN_DIR/results.h5; rerun resumes:\n"
    "               mpirun -np 4 hnas search --config inputs/search_cpu.ini --run-dir runs/s1\n"
    "\n"
    "Every key of the INI file (--config FILE) can be given on the command line as\n"
    "--section.key=value, which overrides the file. Exit codes: 0 done, 2 bad usage,\n"
    "configuration or input, 75 stopped early (resumable), other non-zero internal error.\n";

}  // namespace

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::string current;
  for (char c : text) {
    if (c == ',' || c == ' ' || c == '\t' || c == '\n') {
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
  const std::string command = argc > 1 ? argv[1] : "--help";
  if (command == "--help" || command == "-h" || command == "help") {
    invocation.help = kUsage;
    return invocation;
  }
  if (command == "--version") {
    invocation.command = Command::Version;
    return invocation;
  }
  HNAS_CHECK(command == "evaluate" || command == "search", ConfigError,
             "unknown command \"" << command << "\"; try hnas --help");
  const bool searching = command == "search";
  invocation.command = searching ? Command::Search : Command::Evaluate;
  SearchOptions so;

  EvaluateOptions o;
  RawEvaluate raw;
  o.shape.attention_bias = true;  // MAD-lab's attention has biases on QKV and output
  o.shape.head_bias = true;
  bool help = false;

  OptionTable table(searching ? "hnas search options" : "hnas evaluate options");
  table.description().add_options()("help,h", po::bool_switch(&help), "print this help");
  table.description().add_options()("config", po::value<std::string>(&raw.config),
                                    "INI file with any of the keys below");
  table.description().add_options()("dry-run", po::bool_switch(&raw.dry_run),
                                    "validate, print the plan, train nothing");
  if (!searching)
    table.add("arch", &raw.arch, "architecture: letters (AAMMMM) or run-length (A2M4)");
  else  // accepted so that an evaluate config gets a clear answer instead of "unrecognised"
    table.description().add_options()("arch", po::value<std::string>(&raw.arch), "(hnas evaluate only)");
  table.add("task", &raw.task, "MAD tasks: comma-separated registry names, or 'all'");
  table.add("data", &raw.data, "token shards to train on (.bin, .h5, .h5:/dataset); replaces MAD");

  table.add("model.d_model", &o.shape.d_model, "residual width");
  table.add("model.heads", &o.shape.num_heads, "attention query heads");
  table.add("model.kv_heads", &o.shape.num_kv_heads, "key/value heads (grouped-query attention when < heads)");
  table.add("model.head_dim", &o.shape.head_dim, "width of one head (even)");
  table.add("model.mlp_hidden", &o.shape.mlp_hidden, "SwiGLU inner width (0: MAD's rule from d_model)");
  table.add("model.rope_theta", &o.shape.rope_theta, "rotary embedding base");
  table.add("model.norm_eps", &o.shape.norm_eps, "RMSNorm epsilon");
  table.add("model.attention_bias", &o.shape.attention_bias, "biases on the QKV and output projections");
  table.add("model.head_bias", &o.shape.head_bias, "bias on the untied LM head");
  table.add("model.tie_embeddings", &o.shape.tie_embeddings, "LM head shares the token embedding");
  table.add("model.init", &raw.init,
            "initialisation: llama (all weights N(0, 0.02)), mad (MAD-lab: Linear weights PyTorch default) or auto "
            "(mad for MAD tasks, llama for tokens)");
  table.add("model.kernels", &raw.kernels, "fused (hand-written CPU kernels) or reference (plain LibTorch ops)");

  table.add("train.schedule", &raw.schedule, "learning-rate schedule: cosine, wsd or constant");
  table.add("train.warmup_steps", &o.mad.trainer.schedule.warmup_steps, "linear warm-up steps");
  table.add("train.min_lr", &o.mad.trainer.schedule.min_lr, "learning rate at the end of the decay");
  table.add("train.decay_fraction", &o.mad.trainer.schedule.decay_fraction, "WSD: fraction of steps spent decaying");
  table.add("train.beta1", &o.mad.trainer.beta1, "AdamW beta1");
  table.add("train.beta2", &o.mad.trainer.beta2, "AdamW beta2");
  table.add("train.eps", &o.mad.trainer.adam_eps, "AdamW epsilon");
  table.add("train.decay_norms_and_biases", &o.mad.trainer.decay_norms_and_biases,
            "apply weight decay to norm gains and biases too (MAD-lab does)");
  table.add("train.grad_clip", &raw.grad_clip,
            "max global gradient norm, 0 for off, or auto (0 for MAD tasks as MAD-lab, 1.0 for tokens)");
  table.add("train.micro_batches", &o.mad.trainer.micro_batches, "gradient accumulation: micro-batches per step");
  table.add("train.log_every", &o.mad.trainer.log_every, "steps between progress lines (0: none)");
  table.add("train.max_seconds", &o.mad.trainer.max_seconds, "wall-clock budget per training run (0: none)");
  table.add("train.seed", &o.mad.init_seed, "model initialisation and shuffling seed");

  table.add("mad.settings", &raw.mad_settings, "baseline (one setting per task) or all (the 66-setting benchmark)");
  table.add("mad.num_train", &o.mad.num_train, "training instances per setting (0: the setting's own)");
  table.add("mad.num_test", &o.mad.num_test, "test instances per setting");
  table.add("mad.seq_len", &o.mad.seq_len, "override every setting's sequence length (0: keep)");
  table.add("mad.epochs", &o.mad.epochs, "maximum epochs per run");
  table.add("mad.batch_size", &o.mad.batch_size, "batch size (train and test)");
  table.add("mad.learning_rates", &raw.learning_rates, "learning-rate grid (comma-separated)");
  table.add("mad.weight_decays", &raw.weight_decays, "weight-decay grid (comma-separated)");
  table.add("mad.target_accuracy", &o.mad.target_accuracy, "stop a run once test accuracy reaches this (0: never)");
  table.add("mad.seed", &o.mad.data_seed, "data generator seed");

  table.add("tokens.valid", &raw.valid, "validation shards (empty: split off the training shards)");
  table.add("tokens.val_fraction", &o.tokens.val_fraction,
            "validation share of each training shard when tokens.valid is empty");
  table.add("tokens.vocab_size", &o.tokens.vocab_size, "vocabulary of the shards (257 for byte-level)");
  table.add("tokens.seq_len", &o.tokens.seq_len, "context length");
  table.add("tokens.batch_size", &o.tokens.batch_size, "sequences per step");
  table.add("tokens.steps", &o.tokens.steps, "training steps");
  table.add("tokens.eval_every", &o.tokens.eval_every, "steps between validation passes");
  table.add("tokens.val_windows", &o.tokens.val_windows, "validation windows (fixed set)");
  table.add("tokens.lr", &o.tokens.lr, "peak learning rate");
  table.add("tokens.weight_decay", &o.tokens.weight_decay, "AdamW weight decay");
  table.add("tokens.seed", &o.tokens.data_seed, "window sampling seed");

  table.add("run.threads", &o.threads,
            searching ? "intra-op CPU threads per rank (0: SLURM_CPUS_PER_TASK, else the node's cores / its ranks)"
                      : "intra-op CPU threads (0: SLURM_CPUS_PER_TASK, else all cores)");
  table.add("run.device", &raw.device,
            searching ? "cpu, or cuda: one GPU per rank (node-local rank modulo the GPUs), gradients over NCCL"
                      : "cpu or cuda (the first visible GPU)");
  auto& st = so.strategy;
  if (searching) {
    table.description().add_options()("run-dir", po::value<std::string>(&so.run_dir),
                                      "run directory (results.h5); rerunning on it resumes");
    table.add("search.strategy", &raw.strategy, "exhaustive, random, bo, end_incremental or middle_incremental");
    table.add("search.num_layers", &st.space.num_layers, "layers n the search chooses (per stage when incremental)");
    table.add("search.primitives", &raw.primitives, "primitive letters of the space (A attention, M MLP)");
    table.add("search.min_attention_fraction", &st.space.min_attention_fraction,
              "lower bound on the attention share of a candidate's layers");
    table.add("search.max_attention_fraction", &st.space.max_attention_fraction,
              "upper bound on the attention share of a candidate's layers");
    table.add("search.first", &raw.first, "fixed first layer (a primitive letter; empty: free)");
    table.add("search.last", &raw.last, "fixed last layer (a primitive letter; empty: free)");
    table.add("search.target_layers", &st.target_layers,
              "incremental strategies: final depth N, a multiple of search.num_layers");
    table.add("search.max_evaluations", &st.max_evaluations,
              "budget: new architectures evaluated (all stages; promotions not counted)");
    table.add("search.seed", &st.seed, "strategy seed (proposals are reproducible given it)");
    table.add("search.ranks_per_candidate", &so.ranks_per_candidate,
              "team size: ranks training one candidate data-parallel; must divide the world size");
    table.add("search.bo_initial", &st.bayesian.initial_points,
              "BO quasi-random initial design size (0: max(5, 2n), at most half the budget)");
    table.add("search.bo_random_pool", &st.bayesian.random_pool,
              "BO: candidates scored per proposal when the space exceeds 2^16");
    table.add("search.bo_local_starts", &st.bayesian.local_search_starts,
              "BO: best pool points refined by single-layer mutations");
    table.add("search.bo_refit_every", &st.bayesian.refit_every,
              "BO: proposals between GP hyperparameter fits (the last fit is reused in between)");
    table.add("search.asha_rungs", &st.halving.rungs, "successive-halving fidelity levels (1: off)");
    table.add("search.asha_eta", &st.halving.eta, "successive-halving reduction factor");
    table.add("run.nccl_timeout", &so.nccl_timeout,
              "seconds a NCCL collective may make no progress before the job aborts (0: wait forever)");
    table.add("search.results_overhead", &so.results_overhead,
              "largest fraction of wall time spent rewriting results.h5 (writes are spaced to stay below)");
    table.add("debug.diverge_arch", &so.diverge_arch, "fault injection: this architecture trains at lr 1e30");
    table.add("debug.fail_arch", &so.fail_arch, "fault injection: this architecture throws during training");
  }

  std::vector<std::string> problems;
  try {
    po::variables_map vm;
    std::vector<std::string> args(argv + 2, argv + argc);
    po::store(po::command_line_parser(args).options(table.description()).run(), vm);  // CLI first: it wins
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream file(path);
      HNAS_CHECK(file.good(), ConfigError, "cannot read config file " << path);
      try {
        po::store(po::parse_config_file(file, table.description(), /*allow_unregistered=*/false), vm);
      } catch (const po::error& e) {
        throw ConfigError(std::string(e.what()) + " (in " + path + ")");
      }
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError(std::string(e.what()) + "; try hnas " + command + " --help");
  }
  if (help) {
    std::ostringstream out;
    out << kUsage << "\n" << table.description();
    invocation.command = Command::Help;
    invocation.help = out.str();
    return invocation;
  }

  // Conversion and validation: gather every problem, then report them together.
  auto check = [&](bool ok, const std::string& message) {
    if (!ok) problems.push_back(message);
  };
  if (!searching) {
    try {
      HNAS_CHECK(!raw.arch.empty(), ConfigError, "arch is required (e.g. --arch AAMMMM)");
      o.genome = arch::Genome::parse(raw.arch);
    } catch (const ConfigError& e) {
      problems.push_back(e.what());
    }
  } else {
    check(!so.run_dir.empty(), "--run-dir is required (the directory of results.h5; rerunning resumes)");
    check(raw.arch.empty(), "arch = " + raw.arch +
                                ": hnas search chooses the architectures (search.num_layers, search.primitives); "
                                "remove arch from the configuration");
    if (const auto kind = search::parse_strategy(raw.strategy))
      st.kind = *kind;
    else
      problems.push_back(
          "search.strategy must be exhaustive, random, bo, end_incremental or middle_incremental, got \"" +
          raw.strategy + "\"");
    st.space.primitives.clear();
    for (char letter : raw.primitives) {
      if (letter == ',' || letter == ' ') continue;
      if (const auto* info = arch::find_primitive(letter))
        st.space.primitives.push_back(info->id);
      else
        problems.push_back(std::string("search.primitives: unknown primitive '") + letter +
                           "'; known: " + arch::registered_letters());
    }
    auto fixed_layer = [&](const std::string& key, const std::string& text) -> std::optional<arch::Primitive> {
      if (text.empty()) return std::nullopt;
      const auto* info = text.size() == 1 ? arch::find_primitive(text[0]) : nullptr;
      if (!info) problems.push_back(key + " must be one primitive letter (" + arch::registered_letters() + ")");
      return info ? std::optional<arch::Primitive>(info->id) : std::nullopt;
    };
    st.space.first = fixed_layer("search.first", raw.first);
    st.space.last = fixed_layer("search.last", raw.last);
    check(so.ranks_per_candidate >= 1, "search.ranks_per_candidate must be >= 1");
    check(so.nccl_timeout >= 0, "run.nccl_timeout must be >= 0");
    check(so.results_overhead > 0 && so.results_overhead <= 1, "search.results_overhead must be in (0, 1]");
  }
  if (o.shape.mlp_hidden == 0) o.shape.mlp_hidden = arch::mad_swiglu_hidden(o.shape.d_model);
  try {
    o.shape.validate();
  } catch (const ConfigError& e) {
    problems.push_back(e.what());
  }
  if (raw.kernels == "fused")
    o.kernels = model::Kernels::Fused;
  else if (raw.kernels == "reference")
    o.kernels = model::Kernels::Reference;
  else
    problems.push_back("model.kernels must be fused or reference, got \"" + raw.kernels + "\"");
  const bool on_tokens = !raw.data.empty();
  if (raw.init == "mad" || (raw.init == "auto" && !on_tokens))
    o.init = model::InitScheme::Mad;
  else if (raw.init == "llama" || raw.init == "auto")
    o.init = model::InitScheme::Llama;
  else
    problems.push_back("model.init must be auto, llama or mad, got \"" + raw.init + "\"");
  try {
    o.mad.trainer.schedule.kind = train::parse_schedule(raw.schedule, "train.schedule");
  } catch (const ConfigError& e) {
    problems.push_back(e.what());
  }

  const auto& t = o.mad.trainer;
  check(t.schedule.warmup_steps >= 0, "train.warmup_steps must be >= 0");
  check(t.schedule.min_lr >= 0, "train.min_lr must be >= 0");
  check(t.schedule.decay_fraction > 0 && t.schedule.decay_fraction <= 1, "train.decay_fraction must be in (0, 1]");
  check(t.beta1 >= 0 && t.beta1 < 1, "train.beta1 must be in [0, 1)");
  check(t.beta2 >= 0 && t.beta2 < 1, "train.beta2 must be in [0, 1)");
  check(t.adam_eps > 0, "train.eps must be > 0");
  if (raw.grad_clip == "auto") {
    o.mad.trainer.grad_clip = on_tokens ? 1.0 : 0.0;
  } else {
    const auto clip = parse_numbers("train.grad_clip", raw.grad_clip, problems);
    o.mad.trainer.grad_clip = clip.empty() ? 0.0 : clip[0];
    check(clip.size() <= 1 && o.mad.trainer.grad_clip >= 0, "train.grad_clip must be one number >= 0, or auto");
  }
  check(t.micro_batches >= 1, "train.micro_batches must be >= 1");
  check(t.log_every >= 0, "train.log_every must be >= 0");
  check(t.max_seconds >= 0, "train.max_seconds must be >= 0");
  check(o.threads >= 0, "run.threads must be >= 0");
  check(raw.device == "cpu" || raw.device == "cuda", "run.device must be cpu or cuda, got \"" + raw.device + "\"");
  o.on_gpu = raw.device == "cuda";
  if (o.on_gpu) o.kernels = model::Kernels::Reference;  // the fused kernels are CPU code

  o.on_tokens = on_tokens;
  if (o.on_tokens) {
    o.tokens.train_paths = split_list(raw.data);
    o.tokens.valid_paths = split_list(raw.valid);
    o.tokens.trainer = o.mad.trainer;
    o.tokens.kernels = o.kernels;
    o.tokens.init = o.init;
    o.tokens.init_seed = o.mad.init_seed;
    check(o.tokens.vocab_size >= 2, "tokens.vocab_size must be >= 2");
    check(o.tokens.seq_len >= 1, "tokens.seq_len must be >= 1");
    check(o.tokens.batch_size >= 1, "tokens.batch_size must be >= 1");
    check(o.tokens.steps >= 1, "tokens.steps must be >= 1");
    check(o.tokens.eval_every >= 0, "tokens.eval_every must be >= 0");
    check(o.tokens.val_windows >= 1, "tokens.val_windows must be >= 1");
    check(o.tokens.lr > 0, "tokens.lr must be > 0");
    check(o.tokens.weight_decay >= 0, "tokens.weight_decay must be >= 0");
    check(o.tokens.valid_paths.size() || (o.tokens.val_fraction > 0 && o.tokens.val_fraction < 1),
          "tokens.val_fraction must be in (0, 1) when tokens.valid is empty");
    check(o.tokens.batch_size % t.micro_batches == 0 || t.micro_batches == 1,
          "tokens.batch_size must be a multiple of train.micro_batches");
  } else {
    o.mad.tasks.clear();
    for (const auto& name : split_list(raw.task)) {
      if (name == "all") {
        o.mad.tasks = data::all_tasks();
        break;
      }
      try {
        o.mad.tasks.push_back(data::parse_task(name));
      } catch (const ConfigError& e) {
        problems.push_back(std::string("task: ") + e.what());
      }
    }
    check(!o.mad.tasks.empty() || !problems.empty(), "task must name at least one MAD task");
    if (raw.mad_settings == "all")
      o.mad.all_settings = true;
    else if (raw.mad_settings != "baseline")
      problems.push_back("mad.settings must be baseline or all, got \"" + raw.mad_settings + "\"");
    o.mad.learning_rates = parse_numbers("mad.learning_rates", raw.learning_rates, problems);
    o.mad.weight_decays = parse_numbers("mad.weight_decays", raw.weight_decays, problems);
    for (double lr : o.mad.learning_rates) check(lr > 0, "mad.learning_rates must be > 0");
    for (double wd : o.mad.weight_decays) check(wd >= 0, "mad.weight_decays must be >= 0");
    check(o.mad.num_train >= 0, "mad.num_train must be >= 0");
    check(o.mad.num_test >= 1, "mad.num_test must be >= 1");
    check(o.mad.seq_len >= 0, "mad.seq_len must be >= 0");
    check(o.mad.epochs >= 1, "mad.epochs must be >= 1");
    check(o.mad.batch_size >= 1, "mad.batch_size must be >= 1");
    check(o.mad.target_accuracy >= 0 && o.mad.target_accuracy <= 1, "mad.target_accuracy must be in [0, 1]");
    o.mad.kernels = o.kernels;
    o.mad.init = o.init;
    if (problems.empty()) {
      try {
        train::selected_settings(o.mad);  // validates the overridden settings
      } catch (const ConfigError& e) {
        problems.push_back(e.what());
      }
    }
  }

  if (!problems.empty()) {
    std::string message = problems.size() == 1 ? problems[0] : "invalid configuration:";
    if (problems.size() > 1)
      for (const auto& p : problems) message += "\n  - " + p;
    throw ConfigError(message);
  }
  o.dry_run = raw.dry_run;
  o.effective_ini = table.effective_ini();
  if (searching) {
    so.dry_run = raw.dry_run;
    so.effective_ini = o.effective_ini;
    so.evaluation = std::move(o);
    invocation.search = std::move(so);
  } else {
    invocation.evaluate = std::move(o);
  }
  return invocation;
}

}  // namespace hnas::cli
