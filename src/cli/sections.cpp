// SPDX-License-Identifier: Apache-2.0
#include "sections.hpp"

#include "hnas/arch/primitive.hpp"
#include "hnas/core/error.hpp"
#include "hnas/data/mad.hpp"
#include "hnas/data/shard_inputs.hpp"

namespace hnas::cli {
namespace {

constexpr OnResume kMayChange = OnResume::MayChange;

// The inference stage (hnas run, hnas generate --run-dir) times prefill and decoding on
// this prompt unless another is configured (63 bytes: byte-level token ids, valid in any vocabulary of 256 or more).
constexpr const char* kTimingPrompt = "The history of the English language begins with the arrival of ";

bool on_tokens(const Settings& s) { return !s.data.empty(); }

// Runs `check`, turning the ConfigError it may throw into one more problem.
template <class Check>
void gather(Problems& problems, Check check) {
  try {
    check();
  } catch (const Error& e) {
    problems.push_back(e.what());
  }
}

}  // namespace

Settings default_settings(Command command) {
  Settings s;
  s.command = command;
  s.evaluation.shape.attention_bias = true;  // MAD-lab's attention has biases on QKV and output
  s.evaluation.shape.head_bias = true;
  return s;
}

// ---- top level: what is evaluated ----

void declare_top_level(OptionTable& t, Settings& s) {
  if (s.command == Command::Aggregate) return;  // reads the search's results
  if (s.command == Command::Pretrain) {
    t.words("arch", &s.pretrain_archs,
            "architectures to pre-train at the [extrapolate] target (empty: the winner and baseline of /extrapolate)");
    return;
  }
  if (s.command == Command::Extrapolate) {
    t.text("arch", &s.arch, "architecture to extrapolate (empty: the aggregate in --run-dir)");
    return;
  }
  const bool searched = s.command == Command::Search || s.command == Command::Run;
  t.text("arch", &s.arch,
         searched ? "(hnas evaluate only: the search chooses the architectures)"
                  : "architecture: letters (AAMMMM) or run-length (A2M4)");
  t.words("task", &s.tasks, "MAD tasks (comma- or space-separated registry names), or 'all'");
  t.words("data", &s.data, "token shards to train on (.bin, .h5, .h5:/dataset); replaces MAD");
}

void check_top_level(Settings& s, Problems& problems) {
  if (s.command == Command::Extrapolate) {
    if (!s.arch.empty()) gather(problems, [&] { s.extrapolate.arch = arch::Genome::parse(s.arch); });
    return;
  }
  if (s.command == Command::Search || s.command == Command::Run) {
    if (!s.arch.empty())
      problems.push_back("arch = " + printable(s.arch) + ": hnas " + (s.command == Command::Run ? "run" : "search") +
                         " chooses the architectures (search.num_layers, search.primitives); remove arch from the "
                         "configuration (hnas pretrain --arch trains given ones)");
  } else if (s.arch.empty()) {
    problems.push_back("arch is required (e.g. --arch AAMMMM)");
  } else {
    gather(problems, [&] { s.genome = arch::Genome::parse(s.arch); });
  }
  s.evaluation.objective = on_tokens(s) ? train::Objective::Tokens : train::Objective::Mad;
}

// ---- [model] ----

void declare_model(OptionTable& t, Settings& s) {
  auto& m = s.evaluation.shape;
  const auto positive = Range::at_least(1);
  t.integer("model.d_model", &m.d_model, positive, "residual width");
  t.integer("model.heads", &m.num_heads, positive, "attention query heads");
  t.integer("model.kv_heads", &m.num_kv_heads, positive, "key/value heads (grouped-query attention when < heads)");
  t.integer("model.head_dim", &m.head_dim, Range::at_least(2), "width of one head (even)");
  t.integer("model.mlp_hidden", &m.mlp_hidden, Range::at_least(0), "SwiGLU inner width (0: MAD's rule from d_model)");
  t.real("model.rope_theta", &m.rope_theta, Range::above(0), "rotary embedding base");
  t.real("model.norm_eps", &m.norm_eps, Range::above(0), "RMSNorm epsilon");
  t.flag("model.attention_bias", &m.attention_bias, "biases on the QKV and output projections");
  t.flag("model.head_bias", &m.head_bias, "bias on the untied LM head");
  t.flag("model.tie_embeddings", &m.tie_embeddings, "LM head shares the token embedding");
  t.choice("model.init", &s.init, {{"auto", InitChoice::Auto}, {"llama", InitChoice::Llama}, {"mad", InitChoice::Mad}},
           "initialisation: llama (all weights N(0, 0.02)), mad (MAD-lab: Linear weights PyTorch default) or auto "
           "(mad for MAD tasks, llama for tokens)");
  t.choice("model.kernels", &s.evaluation.recipe.kernels,
           {{"fused", model::Kernels::Fused}, {"reference", model::Kernels::Reference}},
           "fused (hand-written CPU kernels) or reference (plain LibTorch ops)");
}

void check_model(Settings& s, Problems& problems) {
  auto& shape = s.evaluation.shape;
  if (shape.mlp_hidden == 0) shape.mlp_hidden = arch::mad_swiglu_hidden(shape.d_model);
  gather(problems, [&] { shape.validate(); });
  auto& recipe = s.evaluation.recipe;
  const bool mad_init = s.init == InitChoice::Mad || (s.init == InitChoice::Auto && !on_tokens(s));
  recipe.init = mad_init ? model::InitScheme::Mad : model::InitScheme::Llama;
}

// ---- [train] ----

void declare_train(OptionTable& t, Settings& s) {
  auto& trainer = s.evaluation.recipe.trainer;
  auto& schedule = trainer.schedule;
  t.choice("train.schedule", &schedule.kind,
           {{"cosine", train::ScheduleKind::Cosine},
            {"wsd", train::ScheduleKind::Wsd},
            {"constant", train::ScheduleKind::Constant}},
           "learning-rate schedule: cosine, wsd or constant");
  t.integer("train.warmup_steps", &schedule.warmup_steps, Range::at_least(0), "linear warm-up steps");
  t.real("train.min_lr", &schedule.min_lr, Range::at_least(0), "learning rate at the end of the decay");
  t.real("train.decay_fraction", &schedule.decay_fraction, Range::open_closed(0, 1),
         "WSD: fraction of steps spent decaying");
  t.real("train.beta1", &trainer.beta1, Range::half_open(0, 1), "AdamW beta1");
  t.real("train.beta2", &trainer.beta2, Range::half_open(0, 1), "AdamW beta2");
  t.real("train.eps", &trainer.adam_eps, Range::above(0), "AdamW epsilon");
  t.flag("train.decay_norms_and_biases", &trainer.decay_norms_and_biases,
         "apply weight decay to norm gains and biases too (MAD-lab does)");
  t.text("train.grad_clip", &s.grad_clip,
         "max global gradient norm, 0 for off, or auto (0 for MAD tasks as MAD-lab, 1.0 for tokens)");
  t.integer("train.micro_batches", &trainer.micro_batches, Range::at_least(1),
            "gradient accumulation: micro-batches per step");
  t.integer("train.log_every", &trainer.log_every, Range::at_least(0), "steps between progress lines (0: none)",
            kMayChange);
  t.real("train.max_seconds", &trainer.max_seconds, Range::at_least(0), "wall-clock budget per training run (0: none)");
  t.integer("train.seed", &s.evaluation.recipe.init_seed, Range::at_least(0),
            "model initialisation and shuffling seed");
}

void check_train(Settings& s, Problems& problems) {
  auto& trainer = s.evaluation.recipe.trainer;
  if (s.grad_clip == "auto") {
    trainer.grad_clip = on_tokens(s) ? 1.0 : 0.0;
  } else {
    double clip = 0;
    if (parse_real("train.grad_clip", s.grad_clip, clip, problems)) {
      check_range("train.grad_clip", clip, Range::at_least(0), s.grad_clip, problems);
      trainer.grad_clip = clip;
    }
  }
}

// ---- [mad] ----

void declare_mad(OptionTable& t, Settings& s) {
  auto& mad = s.evaluation.mad;
  t.choice("mad.settings", &s.all_settings, {{"baseline", false}, {"all", true}},
           "baseline (one setting per task) or all (the 66-setting benchmark)");
  t.integer("mad.num_train", &mad.num_train, Range::at_least(0),
            "training instances per setting (0: the setting's own)");
  t.integer("mad.num_test", &mad.num_test, Range::at_least(1), "test instances per setting");
  t.integer("mad.seq_len", &mad.seq_len, Range::at_least(0), "override every setting's sequence length (0: keep)");
  t.integer("mad.epochs", &mad.epochs, Range::at_least(1), "maximum epochs per run");
  t.integer("mad.batch_size", &mad.batch_size, Range::at_least(1), "batch size (train and test)");
  t.reals("mad.learning_rates", &mad.learning_rates, Range::above(0), "learning-rate grid (comma-separated)");
  t.reals("mad.weight_decays", &mad.weight_decays, Range::at_least(0), "weight-decay grid (comma-separated)");
  t.real("mad.target_accuracy", &mad.target_accuracy, Range::closed(0, 1),
         "stop a run once test accuracy reaches this (0: never)");
  t.integer("mad.seed", &mad.data_seed, Range::at_least(0), "data generator seed");
}

void check_mad(Settings& s, Problems& problems) {
  if (on_tokens(s)) return;
  auto& mad = s.evaluation.mad;
  mad.all_settings = s.all_settings;
  mad.tasks.clear();
  for (const auto& name : s.tasks) {
    if (name == "all") {
      mad.tasks = data::all_tasks();
      break;
    }
    gather(problems, [&] {
      try {
        mad.tasks.push_back(data::parse_task(name));
      } catch (const ConfigError& e) {
        throw ConfigError(std::string("task: ") + e.what());
      }
    });
  }
  if (mad.tasks.empty() && problems.empty()) problems.push_back("task must name at least one MAD task");
  if (problems.empty()) gather(problems, [&] { train::selected_settings(mad); });  // validates the overrides
}

// ---- [tokens] ----

void declare_tokens(OptionTable& t, Settings& s) {
  auto& tokens = s.evaluation.tokens;
  t.words("tokens.valid", &s.valid, "validation shards (empty: split off the training shards)");
  t.real("tokens.val_fraction", &tokens.val_fraction, Range::open(0, 1),
         "validation share of each training shard when tokens.valid is empty");
  t.integer("tokens.vocab_size", &tokens.vocab_size, Range::at_least(2),
            "vocabulary of the shards (257 for byte-level)");
  t.integer("tokens.seq_len", &tokens.seq_len, Range::at_least(1), "context length");
  t.integer("tokens.batch_size", &tokens.batch_size, Range::at_least(1), "sequences per step");
  t.integer("tokens.steps", &tokens.steps, Range::at_least(1), "training steps");
  t.integer("tokens.eval_every", &tokens.eval_every, Range::at_least(0), "steps between validation passes");
  t.integer("tokens.val_windows", &tokens.val_windows, Range::at_least(1), "validation windows (fixed set)");
  t.real("tokens.lr", &tokens.lr, Range::above(0), "peak learning rate");
  t.real("tokens.weight_decay", &tokens.weight_decay, Range::at_least(0), "AdamW weight decay");
  t.integer("tokens.seed", &tokens.data_seed, Range::at_least(0), "window sampling seed");
}

void check_tokens(Settings& s, Problems& problems) {
  auto& tokens = s.evaluation.tokens;
  if (!on_tokens(s)) {
    if (!s.valid.empty()) problems.push_back("tokens.valid is given but data is not: give the training shards too");
    return;
  }
  tokens.train_paths = s.data;
  tokens.valid_paths = s.valid;
  const auto micro_batches = s.evaluation.recipe.trainer.micro_batches;
  if (tokens.batch_size % micro_batches != 0)
    problems.push_back("tokens.batch_size = " + std::to_string(tokens.batch_size) +
                       " must be a multiple of train.micro_batches = " + std::to_string(micro_batches));
  gather(problems, [&] { data::check_distinct_shards(tokens.train_paths, tokens.valid_paths); });
}

// ---- [run] ----

void declare_run(OptionTable& t, Settings& s) {
  auto& job = s.job;
  t.integer("run.threads", &job.threads, Range::at_least(0),
            "intra-op CPU threads per rank (0: SLURM_CPUS_PER_TASK, else the node's cores / its ranks)", kMayChange);
  t.choice("run.device", &s.device, {{"cpu", DeviceChoice::Cpu}, {"cuda", DeviceChoice::Cuda}},
           "cpu, or cuda: one GPU per rank (node-local rank modulo the GPUs), gradients over NCCL", kMayChange);
  t.real("run.nccl_timeout", &job.nccl_timeout, Range::at_least(0),
         "seconds a NCCL collective may make no progress before the job aborts (0: wait forever)", kMayChange);
  t.real("run.stall_timeout", &job.stall_timeout, Range::at_least(0),
         "seconds a rank may wait for a peer inside training (a step's or an evaluation's collectives) before the "
         "job ends, naming the rank and the wait (0: wait forever)",
         kMayChange);
  t.real("run.deadline_margin", &job.deadline_margin, Range::at_least(0),
         "seconds kept free before the deadline (--deadline, or SLURM_JOB_END_TIME) for the final write: work "
         "that would end later is not started, and the job stops there with exit code 75",
         kMayChange);
}

void check_run(Settings& s, Problems&) {
  s.job.cuda = s.device == DeviceChoice::Cuda;
  s.evaluation.on_gpu = s.job.cuda;
  if (s.job.cuda) s.evaluation.recipe.kernels = model::Kernels::Reference;  // the fused kernels are CPU code
}

// ---- [search] ----

void declare_search(OptionTable& t, Settings& s) {
  auto& o = s.search;
  auto& st = o.strategy;
  std::vector<std::pair<std::string, search::StrategyKind>> strategies;
  for (auto kind : {search::StrategyKind::Exhaustive, search::StrategyKind::Random, search::StrategyKind::Bayesian,
                    search::StrategyKind::EndIncremental, search::StrategyKind::MiddleIncremental})
    strategies.emplace_back(search::strategy_name(kind), kind);
  t.choice("search.strategy", &st.kind, strategies, "exhaustive, random, bo, end_incremental or middle_incremental");
  t.integer("search.num_layers", &st.space.num_layers, Range::closed(1, 64),
            "layers n the search chooses (per stage when incremental)");
  t.text("search.primitives", &s.primitives, "primitive letters of the space (A attention, M MLP)");
  t.real("search.min_attention_fraction", &st.space.min_attention_fraction, Range::closed(0, 1),
         "lower bound on the attention share of a candidate's layers");
  t.real("search.max_attention_fraction", &st.space.max_attention_fraction, Range::closed(0, 1),
         "upper bound on the attention share of a candidate's layers");
  t.text("search.first", &s.first, "fixed first layer (a primitive letter; empty: free)");
  t.text("search.last", &s.last, "fixed last layer (a primitive letter; empty: free)");
  t.integer("search.target_layers", &st.target_layers, Range::at_least(0),
            "incremental strategies: final depth N, a multiple of search.num_layers");
  t.integer("search.max_evaluations", &st.max_evaluations, Range::at_least(1),
            "budget: new architectures evaluated (all stages; promotions not counted)");
  t.integer("search.seed", &st.seed, Range::at_least(0), "strategy seed (proposals are reproducible given it)");
  t.integer("search.ranks_per_candidate", &o.ranks_per_candidate, Range::at_least(1),
            "team size: ranks training one candidate data-parallel; must divide the world size", kMayChange);
  t.integer("search.bo_initial", &st.bayesian.initial_points, Range::at_least(0),
            "BO quasi-random initial design size (0: max(5, 2n), at most half the budget)");
  t.integer("search.bo_random_pool", &st.bayesian.random_pool, Range::at_least(1),
            "BO: candidates scored per proposal when the space exceeds 2^16");
  t.integer("search.bo_local_starts", &st.bayesian.local_search_starts, Range::at_least(0),
            "BO: best pool points refined by single-layer mutations");
  t.integer("search.bo_refit_every", &st.bayesian.refit_every, Range::at_least(1),
            "BO: proposals between GP hyperparameter fits (the last fit is reused in between)");
  t.integer("search.asha_rungs", &st.halving.rungs, Range::closed(1, 8), "successive-halving fidelity levels (1: off)");
  t.real("search.asha_eta", &st.halving.eta, Range::above(1), "successive-halving reduction factor");
  t.real("search.results_overhead", &o.results_overhead, Range::open_closed(0, 1),
         "largest fraction of wall time spent rewriting results.h5 (writes are spaced to stay below)", kMayChange);
}

void declare_debug(OptionTable& t, Settings& s) {
  t.text("debug.diverge_arch", &s.search.faults.diverge_arch, "fault injection: this architecture trains at lr 1e30");
  t.text("debug.fail_arch", &s.search.faults.fail_arch, "fault injection: this architecture throws during training");
}

void check_search(Settings& s, Problems& problems) {
  auto& space = s.search.strategy.space;
  space.primitives.clear();
  for (char letter : s.primitives) {
    if (letter == ',' || letter == ' ') continue;
    if (const auto* info = arch::find_primitive(letter))
      space.primitives.push_back(info->id);
    else
      problems.push_back("search.primitives: unknown primitive '" + printable(std::string(1, letter)) +
                         "'; known: " + arch::registered_letters());
  }
  if (space.primitives.empty() && problems.empty()) problems.push_back("search.primitives must name a primitive");
  const auto fixed_layer = [&](const std::string& key, const std::string& text) -> std::optional<arch::Primitive> {
    if (text.empty()) return std::nullopt;
    const auto* info = text.size() == 1 ? arch::find_primitive(text[0]) : nullptr;
    if (!info) problems.push_back(key + " must be one primitive letter (" + arch::registered_letters() + ")");
    return info ? std::optional<arch::Primitive>(info->id) : std::nullopt;
  };
  space.first = fixed_layer("search.first", s.first);
  space.last = fixed_layer("search.last", s.last);
  if (space.min_attention_fraction > space.max_attention_fraction)
    problems.push_back("search.min_attention_fraction must not exceed search.max_attention_fraction");
}

// ---- [aggregate] ----

void declare_aggregate(OptionTable& t, Settings& s) {
  auto& a = s.aggregate;
  t.integer("aggregate.clusters", &a.clusters, Range::at_least(1),
            "K of the K-means on the objective; the aggregate is made from the top cluster");
  t.choice("aggregate.method", &a.method,
           {{"nc", aggregate::AggregateMethod::Consensus}, {"best", aggregate::AggregateMethod::Best}},
           "nc (N_c clustering: per-layer majority over the top cluster) or best (the best candidate)");
  t.text("aggregate.context", &s.aggregate_context, "c of N_c: 0 (N_0, the paper's), 1, 2, ... or all");
  t.real("aggregate.top_fraction", &a.top_fraction, Range::open_closed(0, 1),
         "the top cluster keeps at most this fraction of the valid candidates, its best ones (1: all of it)");
  t.flag("aggregate.evaluate", &a.evaluate,
         "train the aggregate with the search's evaluator unless the search already evaluated it");
  t.choice("aggregate.fallback", &a.fallback,
           {{"none", aggregate::Fallback::None},
            {"best", aggregate::Fallback::Best},
            {"context", aggregate::Fallback::Context}},
           "when the aggregate fails the checks: none (keep it, warn), best, or context (N_1, then N_all, then best)");
}

void check_aggregate(Settings& s, Problems& problems) {
  if (s.aggregate_context == "all") {
    s.aggregate.context = aggregate::kContextAll;
    return;
  }
  const auto& text = s.aggregate_context;
  if (text.empty() || text.size() > 4 || text.find_first_not_of("0123456789") != std::string::npos)
    problems.push_back("aggregate.context = " + printable(text) + ": expected 0, 1, 2, ... or all");
  else
    s.aggregate.context = std::stoi(text);
}

// ---- [extrapolate] ----

void declare_extrapolate(OptionTable& t, Settings& s) {
  t.choice("extrapolate.method", &s.extrapolate.method,
           {{"auto", extrapolate::MethodChoice::Auto},
            {"stack", extrapolate::MethodChoice::Stack},
            {"stretch", extrapolate::MethodChoice::Stretch}},
           "stack, stretch, or auto (the paper's recipe: stretch for 16 or more layers, else stack)");
  declare_target(t, s);
}

void declare_target(OptionTable& t, Settings& s) {
  auto& f = s.target;
  t.text("extrapolate.target", &f.name, "target size: " + extrapolate::preset_names() + ", or custom");
  const auto preset = Range::at_least(0);
  t.integer("extrapolate.blocks", &f.blocks, preset, "baseline blocks of one attention + one MLP (0: the preset's)");
  t.integer("extrapolate.d_model", &f.d_model, preset, "residual width (0: the preset's)");
  t.integer("extrapolate.mlp_hidden", &f.mlp_hidden, preset, "SwiGLU inner width (0: the preset's)");
  t.integer("extrapolate.heads", &f.heads, preset, "query heads (0: the preset's)");
  t.integer("extrapolate.kv_heads", &f.kv_heads, preset, "key/value heads (0: the preset's)");
  t.integer("extrapolate.head_dim", &f.head_dim, preset, "width of one head (0: the preset's)");
  t.integer("extrapolate.vocab_size", &f.vocab_size, preset, "vocabulary (0: the preset's)");
  t.real("extrapolate.rope_theta", &f.rope_theta, Range::at_least(0), "rotary base (0: the preset's)");
  t.choice("extrapolate.tie_embeddings", &f.tie_embeddings,
           {{"auto", std::string("auto")}, {"true", std::string("true")}, {"false", std::string("false")}},
           "LM head shares the embedding: true, false or auto (the preset's)");
  t.integer("extrapolate.context_length", &f.context_length, preset,
            "sequence length for FLOPs per token (0: the preset's, 8192)");
}

void check_extrapolate(Settings& s, Problems& problems) {
  const auto& f = s.target;
  auto& target = s.extrapolate.target;
  if (f.name == "custom") {
    target = extrapolate::TargetShape{};
    target.name = "custom";
    target.description = "custom dimensions";
    target.shape.rope_theta = 500000;
    target.shape.tie_embeddings = true;
    for (const auto& [key, value] : std::vector<std::pair<std::string, int64_t>>{{"blocks", f.blocks},
                                                                                 {"d_model", f.d_model},
                                                                                 {"mlp_hidden", f.mlp_hidden},
                                                                                 {"heads", f.heads},
                                                                                 {"kv_heads", f.kv_heads},
                                                                                 {"head_dim", f.head_dim},
                                                                                 {"vocab_size", f.vocab_size}})
      if (value == 0) problems.push_back("extrapolate.target = custom needs extrapolate." + key);
  } else {
    try {
      target = extrapolate::target_preset(f.name);
    } catch (const ConfigError& e) {
      problems.push_back(std::string("extrapolate.target: ") + e.what());
      return;
    }
  }
  const auto set = [](int64_t value, int64_t& field) {
    if (value > 0) field = value;
  };
  set(f.blocks, target.blocks);
  set(f.d_model, target.shape.d_model);
  set(f.mlp_hidden, target.shape.mlp_hidden);
  set(f.heads, target.shape.num_heads);
  set(f.kv_heads, target.shape.num_kv_heads);
  set(f.head_dim, target.shape.head_dim);
  set(f.vocab_size, target.shape.vocab_size);
  set(f.context_length, target.context_length);
  if (f.rope_theta > 0) target.shape.rope_theta = f.rope_theta;
  if (f.tie_embeddings != "auto") target.shape.tie_embeddings = f.tie_embeddings == "true";
  if (problems.empty()) gather(problems, [&] { target.validate(); });
}

// ---- [pretrain] ----

void declare_pretrain(OptionTable& t, Settings& s) {
  auto& p = s.pretrain;
  auto& k = p.schedule;
  k.kind = train::ScheduleKind::Wsd;
  k.peak_lr = 6e-4;
  k.min_lr = 6e-5;
  t.words("pretrain.data", &p.train_paths, "token shards to pre-train on (.bin, .h5, .h5:/dataset)");
  t.words("pretrain.valid", &p.valid_paths, "validation shards (empty: split off the training shards)");
  t.real("pretrain.val_fraction", &p.val_fraction, Range::open(0, 1),
         "validation share of each training shard when pretrain.valid is empty");
  t.integer("pretrain.seq_len", &p.seq_len, Range::at_least(1), "context length of the training sequences");
  t.integer("pretrain.global_batch", &p.global_batch, Range::at_least(1),
            "sequences per optimizer step over all ranks (reached by gradient accumulation)");
  t.integer("pretrain.micro_batch", &p.micro_batch, Range::at_least(1),
            "sequences per forward/backward pass on one rank");
  t.integer("pretrain.tokens", &p.tokens, Range::at_least(0),
            "training tokens per model (whole global batches; required)");
  t.choice("pretrain.schedule", &k.kind,
           {{"wsd", train::ScheduleKind::Wsd},
            {"cosine", train::ScheduleKind::Cosine},
            {"constant", train::ScheduleKind::Constant}},
           "learning-rate schedule: wsd (warm-up, stable, decay), cosine or constant");
  t.real("pretrain.lr", &k.peak_lr, Range::above(0), "peak learning rate");
  t.real("pretrain.min_lr", &k.min_lr, Range::at_least(0), "learning rate at the end of the decay");
  t.real("pretrain.warmup_fraction", &p.warmup_fraction, Range::half_open(0, 1),
         "fraction of the steps spent warming up linearly");
  t.real("pretrain.decay_fraction", &k.decay_fraction, Range::open_closed(0, 1),
         "wsd: fraction of the steps spent decaying");
  t.choice("pretrain.decay_shape", &k.decay_shape,
           {{"linear", train::DecayShape::Linear},
            {"cosine", train::DecayShape::Cosine},
            {"1-sqrt", train::DecayShape::OneMinusSqrt}},
           "wsd: form of the decay: linear, cosine or 1-sqrt");
  t.real("pretrain.weight_decay", &p.weight_decay, Range::at_least(0), "AdamW weight decay (matrices only)");
  t.real("pretrain.beta1", &p.beta1, Range::half_open(0, 1), "AdamW beta1");
  t.real("pretrain.beta2", &p.beta2, Range::half_open(0, 1), "AdamW beta2");
  t.real("pretrain.eps", &p.adam_eps, Range::above(0), "AdamW epsilon");
  t.real("pretrain.grad_clip", &p.grad_clip, Range::at_least(0), "max global gradient norm (0: off)");
  t.integer("pretrain.eval_every", &p.eval_every, Range::at_least(0),
            "steps between validation passes (0: only at the end)");
  t.integer("pretrain.val_windows", &p.val_windows, Range::at_least(1),
            "validation windows (a fixed set, the same for every model)");
  t.integer("pretrain.log_every", &p.log_every, Range::at_least(0), "steps between progress lines (0: none)",
            kMayChange);
  t.integer("pretrain.checkpoint_every", &p.checkpoint_every, Range::at_least(0),
            "steps between checkpoints (0: by time only)", kMayChange);
  t.real("pretrain.checkpoint_minutes", &p.checkpoint_minutes, Range::at_least(0),
         "minutes between checkpoints at most (0: by steps only)", kMayChange);
  t.integer("pretrain.keep_checkpoints", &p.keep_checkpoints, Range::at_least(1), "checkpoints kept per model",
            kMayChange);
  t.integer("pretrain.seed", &p.seed, Range::at_least(0), "initialisation and data-order seed");
  t.real("pretrain.peak_tflops", &p.peak_tflops, Range::at_least(0),
         "peak TFLOP/s of one rank's device for MFU (0: a known GPU's from a table, else measured)", kMayChange);
  t.real("pretrain.write_gbps", &p.write_gbps, Range::above(0),
         "checkpoint write bandwidth (GB/s) the plan and the deadline assume until a write has been timed", kMayChange);
  t.real("pretrain.device_memory_gb", &p.device_memory_gb, Range::at_least(0),
         "memory of one rank's device (GB) that the plan's per-rank memory must fit (0: the GPU's own; on the "
         "CPU the node's available memory over its ranks)",
         kMayChange);
  t.real("pretrain.plan_mfu", &p.plan_mfu, Range::open_closed(0, 1),
         "model FLOPs utilisation the plan's time estimate assumes", kMayChange);
  t.flag("pretrain.overlap", &p.overlap, "reduce gradient buckets during the backward pass (false: after it)",
         kMayChange);
  t.real("pretrain.bucket_mb", &p.bucket_mb, Range::above(0), "bucket size of the overlapped reduction (MB)",
         kMayChange);
  t.flag("pretrain.shard_optimizer", &p.shard_optimizer,
         "ZeRO-1: each rank keeps and updates 1/ranks of the AdamW state", kMayChange);
  t.flag("pretrain.team_per_model", &p.team_per_model,
         "one team of ranks per model, the models trained side by side (false: one after the other)", kMayChange);
  t.choice("pretrain.kernels", &p.kernels, {{"fused", model::Kernels::Fused}, {"reference", model::Kernels::Reference}},
           "fused (hand-written CPU kernels) or reference (plain LibTorch ops)");
  t.flag("pretrain.recompute", &p.recompute,
         "activation checkpointing: keep each sublayer's input only and recompute the rest in the backward pass "
         "(a third more FLOPs, far less memory)",
         kMayChange);
}

void check_pretrain(Settings& s, Problems& problems) {
  auto& p = s.pretrain;
  for (const auto& text : s.pretrain_archs) gather(problems, [&] { p.archs.push_back(arch::Genome::parse(text)); });
  if (!s.pretrain_archs.empty()) {
    check_extrapolate(s, problems);
    p.target = s.extrapolate.target;
  }
  if (p.tokens == 0) problems.push_back("pretrain.tokens is required: the training tokens per model");
  if (p.train_paths.empty()) problems.push_back("pretrain.data is required: the token shards to pre-train on");
  if (problems.empty()) gather(problems, [&] { data::check_distinct_shards(p.train_paths, p.valid_paths); });
  if (s.job.cuda) p.kernels = model::Kernels::Reference;
}

// ---- [generate] ----

void declare_generate(OptionTable& t, Settings& s) {
  auto& g = s.generate;
  t.text("generate.checkpoint", &g.checkpoint, "checkpoint file, or a checkpoint directory (its latest)");
  t.text("generate.prompt", &g.prompt, "prompt text (its bytes are the tokens of a byte-level vocabulary)");
  t.words("generate.prompt_tokens", &s.prompt_tokens, "or the prompt as token ids");
  t.integer("generate.max_new_tokens", &g.max_new_tokens, Range::at_least(1), "tokens to generate");
  t.real("generate.temperature", &g.temperature, Range::at_least(0), "sampling temperature (0: greedy)");
  t.integer("generate.top_k", &g.top_k, Range::at_least(0), "sample among the k most likely tokens (0: all)");
  t.integer("generate.seed", &g.seed, Range::at_least(0), "sampling seed");
  t.integer("generate.repeats", &g.repeats, Range::at_least(1), "generations to time (the mean is reported)");
  t.text("generate.logits", &g.logits_path, "write the prompt's logits and the tokens to this HDF5 file");
}

void check_generate(Settings& s, Problems& problems) {
  auto& g = s.generate;
  if (s.command == Command::Run && !g.checkpoint.empty())  // the inference stage times every pre-trained model
    problems.push_back("generate.checkpoint = " + printable(g.checkpoint) +
                       ": hnas run times the models it pre-trained; remove generate.checkpoint");
  // The inference stage, in hnas run or as hnas generate --run-dir, times one prompt
  // unless told another: the same figures either way.
  if (g.checkpoint.empty() && g.prompt.empty() && s.prompt_tokens.empty()) g.prompt = kTimingPrompt;
  for (const auto& word : s.prompt_tokens) {
    char* end = nullptr;
    const long long id = std::strtoll(word.c_str(), &end, 10);
    if (word.empty() || *end != '\0' || id < 0)
      problems.push_back("generate.prompt_tokens: \"" + printable(word) + "\" is not a token id");
    else
      g.prompt_tokens.push_back(id);
  }
  if (g.prompt.empty() && g.prompt_tokens.empty() && problems.empty())
    problems.push_back("give the prompt: --prompt TEXT or --generate.prompt_tokens IDS");
}

}  // namespace hnas::cli
