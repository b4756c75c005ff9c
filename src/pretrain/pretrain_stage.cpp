// SPDX-License-Identifier: Apache-2.0
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "checkpoint_writer.hpp"
#include "gradient_buckets.hpp"
#include "hnas/core/check.hpp"
#include "hnas/core/deadline.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/hash.hpp"
#include "hnas/core/log.hpp"
#include "hnas/core/rng.hpp"
#include "hnas/core/signals.hpp"
#include "hnas/data/shard_inputs.hpp"
#include "hnas/data/token_dataset.hpp"
#include "hnas/dist/communicator.hpp"
#include "hnas/dist/gradient_reducer.hpp"
#include "hnas/io/h5.hpp"
#include "hnas/io/results_table.hpp"
#include "hnas/model/hybrid_model.hpp"
#include "hnas/pretrain/checkpoint.hpp"
#include "hnas/pretrain/pretrain.hpp"
#include "hnas/pretrain/resources.hpp"
#include "hnas/train/fused_adamw.hpp"
#include "hnas/train/metrics.hpp"
#include "hnas/train/trainer.hpp"
#include "optimizer.hpp"
#include "pretrain_record.hpp"
#include "run_plan.hpp"
#include "sharded_optimizer.hpp"
#include "token_stream.hpp"

namespace hnas::pretrain {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Rank 0's copy of `t` into every rank's (through host memory for device tensors).
void broadcast_tensor(const dist::Communicator& world, torch::Tensor t) {
  if (world.size() == 1) return;
  torch::NoGradGuard no_grad;
  auto host = t.device().is_cpu() && t.is_contiguous() ? t : t.to(torch::kCPU).contiguous();
  world.broadcast(host.data_ptr(), static_cast<size_t>(host.numel()) * host.element_size(), 0);
  if (!host.is_same(t)) t.copy_(host);
}

// ---- one model ---------------------------------------------------------------------

struct Shared {
  const PretrainOptions& options;
  const PretrainJob& job;
  const dist::Communicator& team;  // the ranks training this model: the world, or its team
  const data::TokenDataset& dataset;
  const data::DataSplit& split;
  const data::WindowSampler& validation;
  const Plan& plan;
  std::string data_fingerprint;
  torch::Device device;
  dist::GradientReducer* reducer;  // over `team`; null when alone on the CPU
  double peak_flops;               // per rank
  // Takes the model's record at every checkpoint and at the end (team rank 0): writes it
  // to results.h5, or keeps it for world rank 0 when the teams train side by side.
  std::function<void(const ModelSpec&, const ModelRecord&, const std::string& fingerprint)> record;
};

torch::Tensor to_tensor(std::vector<int64_t>& values, int64_t rows, int64_t cols, const torch::Device& device) {
  auto t = torch::from_blob(values.data(), {rows, cols}, torch::kInt64);
  return device.is_cpu() ? t.clone() : t.to(device);
}

double validation_loss(model::HybridModel& model, const Shared& s) {
  torch::NoGradGuard no_grad;
  model->eval();
  train::MetricsAccumulator acc;
  const auto& world = s.team;
  for (int64_t i = world.rank(); i < s.validation.num_val_batches(); i += world.size()) {
    data::Batch b = s.validation.val_batch(i);
    auto logits = model->forward(to_tensor(b.inputs, b.batch_size, b.seq_len, s.device));
    acc.add(train::batch_metrics(logits.to(torch::kFloat32), to_tensor(b.targets, b.batch_size, b.seq_len, s.device)),
            b.batch_size);
  }
  acc.sum_over(world.size() > 1 ? s.reducer : nullptr);
  model->train();
  return acc.loss();
}

// Where training continues: rank 0's newest valid checkpoint of the model, which every
// rank of `world` then takes tensor by tensor (a sharded optimizer keeps its part of the
// moments); nothing restored when there is none. Collective over world. Throws
// CollectiveError for a checkpoint of another model, schedule or data, or another
// architecture's tensors.
struct Restored {
  bool resumed = false;
  int64_t step = 0, tokens = 0, world_size = 1;
  double wall_seconds = 0;
  std::vector<TrainPoint> train;  // the series so far (rank 0)
  std::vector<ValidationPoint> validation;
};

Restored restore_latest(const dist::Communicator& world, ModelOptimizer& optimizer, const std::string& checkpoint_dir,
                        const std::map<std::string, std::string>& identity) {
  Checkpoint state;
  std::vector<const NamedTensor*> saved_weights, saved_m1, saved_m2;  // rank 0, in optimizer order
  int64_t resumed = 0;
  dist::agree_on_errors(world, [&] {
    if (world.rank() != 0) return;
    auto c = load_latest_checkpoint(checkpoint_dir);
    if (!c) return;
    check_identity(*c, identity, "the checkpoint of step " + std::to_string(c->step) + " in " + checkpoint_dir);
    state = std::move(*c);
    std::map<std::string, const NamedTensor*> weights, m1, m2;
    for (const auto& t : state.weights) weights[t.name] = &t;
    for (const auto& t : state.exp_avg) m1[t.name] = &t;
    for (const auto& t : state.exp_avg_sq) m2[t.name] = &t;
    const auto& names = optimizer.names();
    for (size_t i = 0; i < names.size(); ++i) {
      const auto w = weights.find(names[i]);
      HNAS_CHECK(w != weights.end() && m1.count(names[i]) && m2.count(names[i]), InputError,
                 checkpoint_dir << ": the checkpoint has no tensor " << names[i] << " (another architecture)");
      const auto& p = optimizer.parameters()[i];
      HNAS_CHECK(w->second->tensor.sizes() == p.sizes(), InputError,
                 checkpoint_dir << ": tensor " << names[i] << " has shape " << w->second->tensor.sizes()
                                << ", the model's is " << p.sizes() << " (another architecture)");
      saved_weights.push_back(w->second);
      saved_m1.push_back(m1[names[i]]);
      saved_m2.push_back(m2[names[i]]);
    }
    resumed = 1;
  });
  world.broadcast(&resumed, sizeof resumed, 0);
  Restored r;
  r.resumed = resumed != 0;
  if (!r.resumed) return r;
  int64_t position[3] = {state.step, state.tokens, state.world_size};
  world.broadcast(position, sizeof position, 0);
  r.step = position[0];
  r.tokens = position[1];
  r.world_size = position[2];
  r.wall_seconds = state.wall_seconds;
  world.broadcast(&r.wall_seconds, sizeof r.wall_seconds, 0);
  torch::NoGradGuard no_grad;
  const auto host = [&](const std::vector<const NamedTensor*>& saved, size_t i) {
    const auto& p = optimizer.parameters()[i];
    auto t = world.rank() == 0 ? saved[i]->tensor.to(torch::kFloat32).contiguous()
                               : torch::empty(p.sizes(), torch::kFloat32);
    broadcast_tensor(world, t);
    return t;
  };
  for (size_t i = 0; i < optimizer.parameters().size(); ++i) {
    optimizer.parameters()[i].copy_(host(saved_weights, i));
    const auto m1 = host(saved_m1, i), m2 = host(saved_m2, i);
    int64_t steps = world.rank() == 0 ? saved_m1[i]->steps : 0;
    world.broadcast(&steps, sizeof steps, 0);
    optimizer.load_moments(i, m1, m2, steps);
  }
  r.train = std::move(state.train);
  r.validation = std::move(state.validation);
  return r;
}

// Trains (or resumes) one model; returns 0 when it is done, kExitResumable after a stop.
// Collective over s.team.
int train_one(const ModelSpec& spec, const Shared& s) {
  const auto& o = s.options;
  const auto& world = s.team;
  const auto& plan = s.plan;
  const std::string checkpoint_dir = s.job.run_dir + "/checkpoints/" + spec.name;
  const auto identity = identity_of(spec, o, plan, s.data_fingerprint);
  const std::string fingerprint = fingerprint_of(identity);

  model::HybridModelOptions mo;
  mo.genome = spec.genome;
  mo.shape = spec.shape;
  mo.shape.max_seq_len = o.seq_len;
  mo.kernels = s.device.is_cpu() ? o.kernels : model::Kernels::Reference;
  mo.init = model::InitScheme::Llama;
  mo.recompute = o.recompute;
  mo.seed = derive_seed(o.seed, "pretrain init " + spec.genome.to_string());
  model::HybridModel model(mo);
  model->to(s.device);
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& item : model->named_parameters()) named.emplace_back(item.key(), item.value());
  std::unique_ptr<ModelOptimizer> optimizer;
  ShardedOptimizer* sharded = nullptr;
  if (o.shard_optimizer && s.reducer && world.size() > 1) {
    auto owned = std::make_unique<ShardedOptimizer>(*s.reducer, world, named, o);
    sharded = owned.get();
    optimizer = std::move(owned);
  } else {
    optimizer = std::make_unique<ReplicatedOptimizer>(named, o, world.rank());
  }

  const Restored restored = restore_latest(world, *optimizer, checkpoint_dir, identity);
  ModelRecord record;
  record.total_steps = plan.steps;
  record.train = restored.train;
  record.validation = restored.validation;
  const double wall_before = restored.wall_seconds;
  const bool resumed = restored.resumed;
  if (resumed) {
    log::info(log::format("pretrain %s: resuming at step %ld/%ld (%ld tokens) from %s", spec.name.c_str(),
                          static_cast<long>(restored.step), static_cast<long>(plan.steps),
                          static_cast<long>(restored.tokens), checkpoint_dir.c_str()));
    if (restored.world_size != world.size())
      log::info(
          log::format("pretrain %s: the checkpoint was written by %ld ranks, this job has %d: the data cursor "
                      "is global, so training continues on the same windows",
                      spec.name.c_str(), static_cast<long>(restored.world_size), world.size()));
  }
  int64_t step = restored.step;
  int64_t tokens = restored.tokens;
  if (step >= plan.steps) {  // finished: only its record was missing (a kill after the last checkpoint)
    record.steps = step;
    record.tokens = tokens;
    record.wall_seconds = wall_before;
    finish_record(record);
    if (world.rank() == 0) s.record(spec, record, fingerprint);
    log::info("pretrain " + spec.name + ": the last checkpoint is complete; its record written");
    return kExitOk;
  }

  const TokenStream stream(s.dataset, s.split, o.seq_len, derive_seed(o.seed, "pretrain data"));
  const double train_flops_per_token = 3.0 * arch::forward_flops_per_token(spec.genome, spec.shape, o.seq_len);
  const int64_t rows_per_rank = o.global_batch / world.size();
  const double normaliser = static_cast<double>(o.global_batch * o.seq_len);
  const auto params = arch::count_parameters(spec.genome, spec.shape);
  if (!resumed)
    log::info(log::format(
        "pretrain %s: %s (%s), %ld parameters (%ld non-embedding), %ld steps of %ld tokens, "
        "%ld micro-batches of %ld x %ld per rank per step, %d ranks",
        spec.name.c_str(), spec.genome.to_string().c_str(), spec.genome.to_run_length().c_str(),
        static_cast<long>(params.total), static_cast<long>(params.non_embedding), static_cast<long>(plan.steps),
        static_cast<long>(plan.tokens_per_step), static_cast<long>(plan.accumulation), static_cast<long>(o.micro_batch),
        static_cast<long>(o.seq_len), world.size()));

  // Data parallelism reduces the gradients in buckets during the backward pass (summed, or
  // reduce-scattered to the optimizer's shards).
  std::unique_ptr<GradientBuckets> summed_buckets;
  if (!sharded && o.overlap && s.reducer && world.size() > 1) {
    std::vector<torch::Tensor> in_model_order;  // backward produces the gradients in its reverse
    for (const auto& [name, p] : named) in_model_order.push_back(p);
    summed_buckets = std::make_unique<GradientBuckets>(*s.reducer, in_model_order,
                                                       static_cast<size_t>(o.bucket_mb * 1e6), BucketReduction::Sum);
  }
  GradientBuckets* buckets = sharded ? &sharded->buckets() : summed_buckets.get();
  if (sharded)
    log::info(
        log::format("pretrain %s: optimizer state sharded over %d ranks (ZeRO-1): this rank holds %.1f%% of it; "
                    "gradients reduce-scattered in %zu buckets %s the backward pass",
                    spec.name.c_str(), world.size(), 100 * sharded->state_fraction(), sharded->buckets().num_buckets(),
                    o.overlap ? "during" : "after"));
  else if (summed_buckets)
    log::info(log::format("pretrain %s: gradients summed in buckets during the backward pass (%zu buckets)",
                          spec.name.c_str(), summed_buckets->num_buckets()));
  else if (s.reducer)
    log::info("pretrain " + spec.name + ": gradients summed after the backward pass");
  const auto start = Clock::now();
  auto last_checkpoint = Clock::now();
  std::vector<int64_t> inputs, targets;
  double ema_step_seconds = 0;
  // A snapshot of the state, written in the background (synchronous: waited for, as at a
  // stop and at the end, before the record says how far the model got).
  CheckpointWriter writer(checkpoint_dir, o.keep_checkpoints, "pretrain " + spec.name);
  if (!writer.background())
    log::info("pretrain " + spec.name + ": this HDF5 is not thread-safe; checkpoints are written while training waits");
  // How long a checkpoint takes, for the deadline: assumed from its bytes until timed.
  double copy_seconds = 0;
  const double assumed_write_seconds = static_cast<double>(checkpoint_bytes(params.total)) / (o.write_gbps * 1e9);
  const auto checkpoint_seconds = [&] {
    const double written = writer.last_write_seconds();
    return copy_seconds + (written > 0 ? written : assumed_write_seconds);
  };
  double validation_seconds = 0;
  const auto write_state = [&](int64_t steps_done, bool synchronous) {
    const auto copy_start = Clock::now();
    Checkpoint c;
    optimizer->collect_moments(c.exp_avg, c.exp_avg_sq);  // collective when sharded
    if (world.rank() != 0) return;
    c.step = steps_done;
    c.tokens = tokens;
    c.cursor = steps_done * o.global_batch;
    c.world_size = world.size();
    c.wall_seconds = wall_before + seconds_since(start);
    c.identity = identity;
    c.arch = spec.genome.to_string();
    c.shape = spec.shape;
    for (size_t i = 0; i < optimizer->parameters().size(); ++i)
      c.weights.push_back({optimizer->names()[i], optimizer->parameters()[i].detach().to(torch::kCPU).clone(), 0});
    c.train = record.train;
    c.validation = record.validation;
    record.steps = steps_done;
    record.tokens = tokens;
    record.wall_seconds = c.wall_seconds;
    copy_seconds = seconds_since(copy_start);
    writer.start(std::move(c));
    if (synchronous) writer.wait();
    s.record(spec, record, fingerprint);
  };

  model->train();
  while (step < plan.steps) {
    int64_t stop = stop_requested() ? 1 : 0;
    // The next step, its evaluation and checkpoint if due, and the checkpoint a stop
    // writes must all end before the deadline less its margin; else stop now.
    const int64_t next = step + 1;
    const bool evaluation_next = (o.eval_every > 0 && next % o.eval_every == 0) || next == plan.steps;
    const bool checkpoint_next = o.checkpoint_every > 0 && next % o.checkpoint_every == 0;
    const double next_seconds = ema_step_seconds + (evaluation_next ? validation_seconds : 0) +
                                checkpoint_seconds() * (checkpoint_next ? 2 : 1);
    if (!stop && would_miss_deadline(next_seconds)) {
      log::info(
          log::format("pretrain %s: step %ld, with its evaluation and checkpoint, would take %.3g s; %.3g s "
                      "are left before the deadline less its margin: stopping",
                      spec.name.c_str(), static_cast<long>(next), next_seconds, seconds_before_deadline()));
      stop = 1;
    }
    if (world.size() > 1) stop = world.all_reduce_max(stop);
    if (stop) {
      dist::agree_on_errors(world, [&] { write_state(step, true); });
      log::info(log::format("pretrain %s: stopped at step %ld/%ld; checkpoint written. Rerun to resume (exit code 75).",
                            spec.name.c_str(), static_cast<long>(step), static_cast<long>(plan.steps)));
      return kExitResumable;
    }
    const auto step_start = Clock::now();
    const double lr = plan.schedule.at(step);
    optimizer->set_lr(lr);
    optimizer->zero_grad();
    double loss_sum = 0;
    const int64_t first = step * o.global_batch + world.rank() * rows_per_rank;
    for (int64_t m = 0; m < plan.accumulation; ++m) {
      stream.read(first + m * o.micro_batch, o.micro_batch, inputs, targets);
      const auto x = to_tensor(inputs, o.micro_batch, o.seq_len, s.device);
      const auto y = to_tensor(targets, o.micro_batch, o.seq_len, s.device);
      torch::Tensor logits;
      if (s.device.is_cuda()) {
        at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
        at::autocast::set_enabled(true);  // bf16 matrix products, float32 master weights
        logits = model->forward(x);
        at::autocast::clear_cache();
        at::autocast::set_enabled(false);
      } else {
        logits = model->forward(x);
      }
      auto loss = train::summed_cross_entropy(logits.to(torch::kFloat32), y) / normaliser;
      if (buckets && o.overlap && m + 1 == plan.accumulation) buckets->arm();
      loss.backward();
      loss_sum += loss.item<double>();
    }
    if (buckets) {
      record.comm_seconds += buckets->finish();
      ++record.comm_steps;
      s.reducer->sum(&loss_sum, 1);
    } else if (s.reducer) {
      const auto reduce_start = Clock::now();
      s.reducer->sum_gradients(optimizer->parameters());
      record.comm_seconds += seconds_since(reduce_start);
      ++record.comm_steps;
      s.reducer->sum(&loss_sum, 1);
    }
    const double norm = std::isfinite(loss_sum) ? optimizer->clip_and_step() : NAN;
    ++step;
    tokens += plan.tokens_per_step;
    const double step_seconds = seconds_since(step_start);
    ema_step_seconds = ema_step_seconds == 0 ? step_seconds : 0.9 * ema_step_seconds + 0.1 * step_seconds;
    const double tokens_per_second = static_cast<double>(plan.tokens_per_step) / step_seconds;
    const double mfu = tokens_per_second * train_flops_per_token / (s.peak_flops * world.size());
    record.train.push_back(
        {step, tokens, loss_sum, lr, norm, tokens_per_second, mfu, wall_before + seconds_since(start)});
    if (!std::isfinite(norm)) {
      record.status = "diverged";
      log::warn(log::format("pretrain %s: diverged at step %ld (loss %g); recorded, going on with the next model",
                            spec.name.c_str(), static_cast<long>(step), loss_sum));
      break;
    }
    const bool last = step == plan.steps;
    if (o.log_every > 0 && (step % o.log_every == 0 || last || step == 1)) {
      const double smoothed = static_cast<double>(plan.tokens_per_step) / ema_step_seconds;
      log::info(
          log::format("pretrain %s step %ld/%ld | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | MFU %.1f%% | "
                      "ETA %s",
                      spec.name.c_str(), static_cast<long>(step), static_cast<long>(plan.steps), loss_sum, lr, norm,
                      smoothed, 100.0 * smoothed * train_flops_per_token / (s.peak_flops * world.size()),
                      log::format_duration(ema_step_seconds * static_cast<double>(plan.steps - step)).c_str()));
    }
    if ((o.eval_every > 0 && step % o.eval_every == 0) || last) {
      const auto validation_start = Clock::now();
      const double v = validation_loss(model, s);
      validation_seconds = seconds_since(validation_start);
      record.validation.push_back({step, tokens, v});
      log::info(log::format("pretrain %s eval step %ld | validation loss %.4f", spec.name.c_str(),
                            static_cast<long>(step), v));
    }
    int64_t due = (o.checkpoint_every > 0 && step % o.checkpoint_every == 0) || last ||
                  (o.checkpoint_minutes > 0 && seconds_since(last_checkpoint) >= 60 * o.checkpoint_minutes);
    if (world.size() > 1) world.broadcast(&due, sizeof due, 0);  // rank 0's clock decides
    if (due && !last) {
      dist::agree_on_errors(world, [&] { write_state(step, false); });
      last_checkpoint = Clock::now();
    }
  }
  // Done (or diverged): the final checkpoint and the record.
  finish_record(record);
  dist::agree_on_errors(world, [&] { write_state(step, true); });
  log::info(log::format("pretrain %s: %s after %ld steps, %ld tokens; validation loss %.4f; %.0f tok/s, MFU %.1f%%",
                        spec.name.c_str(), record.status.c_str(), static_cast<long>(step), static_cast<long>(tokens),
                        record.final_validation_loss, record.tokens_per_second, 100 * record.mfu));
  return kExitOk;
}

// Everything that does not depend on the model, validated on every rank.
struct Inputs {
  std::vector<ModelSpec> specs;
  Plan plan;
  std::string data_fingerprint;
};

data::SamplerOptions sampler_options(const PretrainOptions& o) {
  data::SamplerOptions s;
  s.seq_len = o.seq_len;
  s.batch_size = o.micro_batch;
  s.seed = o.seed;
  s.num_val_windows = o.val_windows;
  s.split = data::split_of(o.valid_paths.size(), o.val_fraction);
  return s;
}

Inputs read_inputs(const PretrainOptions& o, const PretrainJob& job) {
  Inputs in;
  std::string bytes;
  dist::agree_on_errors(*job.world, [&] {
    HNAS_CHECK(!o.train_paths.empty(), ConfigError, "pretrain.data is required: the token shards to pre-train on");
    if (job.world->rank() == 0) bytes = serialize(o.archs.empty() ? extrapolated_models(job) : explicit_models(o));
  });
  job.world->broadcast_string(bytes, 0);
  in.specs = deserialize_specs(bytes);
  dist::agree_on_errors(*job.world, [&] {
    in.plan = make_plan(o, team_size_for(o, job.plan_ranks, in.specs.size()));  // the world's, or --ranks
    in.data_fingerprint = data::fingerprint_shards(data::all_shard_specs(o.train_paths, o.valid_paths));
  });
  return in;
}

// Whether each model's record in results.h5 is complete with its identity (all ranks get it).
std::vector<int64_t> completed_models(const PretrainOptions& o, const PretrainJob& job, const Inputs& in) {
  std::vector<int64_t> done(in.specs.size(), 0);
  dist::agree_on_errors(*job.world, [&] {
    if (job.world->rank() != 0) return;
    std::error_code missing;
    if (!fs::exists(results_path(job), missing)) return;
    const auto file = io::open_file_read_only(results_path(job));
    for (size_t i = 0; i < in.specs.size(); ++i)
      done[i] = model_complete(file.get(), in.specs[i].name,
                               fingerprint_of(identity_of(in.specs[i], o, in.plan, in.data_fingerprint)));
  });
  job.world->broadcast(done.data(), done.size() * sizeof(int64_t), 0);
  return done;
}

constexpr int kTagModelRecord = 201;

}  // namespace

bool pretrain_complete(const PretrainOptions& o, const PretrainJob& job) {
  int64_t complete = 0;
  dist::agree_on_errors(*job.world, [&] {
    if (job.world->rank() != 0) return;
    const std::string path = results_path(job);
    std::error_code missing;
    if (!fs::exists(path, missing)) return;
    try {
      const auto specs = o.archs.empty() ? extrapolated_models(job) : explicit_models(o);
      const Plan plan = make_plan(o, team_size_of(o, *job.world, specs.size()));
      const auto fingerprint_data = data::fingerprint_shards(data::all_shard_specs(o.train_paths, o.valid_paths));
      const auto file = io::open_file_read_only(path);
      complete = 1;
      for (const auto& spec : specs)
        complete &= model_complete(file.get(), spec.name, fingerprint_of(identity_of(spec, o, plan, fingerprint_data)));
    } catch (const Error&) {  // run() reports it
      complete = 0;
    }
  });
  job.world->broadcast(&complete, sizeof complete, 0);
  return complete != 0;
}

int run_pretrain(const PretrainOptions& o, const PretrainJob& job) {
  const auto& world = *job.world;
  const Inputs in = read_inputs(o, job);
  std::unique_ptr<data::TokenDataset> dataset;
  std::unique_ptr<data::WindowSampler> validation;
  dist::agree_on_errors(world, [&] {
    for (const auto& spec : in.specs) spec.shape.validate();
    int64_t vocab = 0;
    for (const auto& spec : in.specs) vocab = std::max(vocab, spec.shape.vocab_size);
    dataset = std::make_unique<data::TokenDataset>(data::all_shard_specs(o.train_paths, o.valid_paths), vocab);
    validation = std::make_unique<data::WindowSampler>(*dataset, sampler_options(o));
    TokenStream(*dataset, validation->split(), o.seq_len, o.seed);  // enough training windows
    if (world.rank() == 0 && job.hold_run_directory && !job.dry_run) job.hold_run_directory();
    if (world.rank() == 0 && !job.dry_run)
      write_tokenizer_record(results_path(job), dataset->tokenizer(), o.train_paths.front());
  });
  const int team_size = team_size_for(o, job.plan_ranks, in.specs.size());  // the world's but on a dry run
  log::info(
      log::format("hnas pretrain: %zu models, %ld steps of %ld sequences x %ld tokens (%ld tokens each), "
                  "%d ranks x %ld micro-batches of %ld%s, schedule %s, run directory %s",
                  in.specs.size(), static_cast<long>(in.plan.steps), static_cast<long>(o.global_batch),
                  static_cast<long>(o.seq_len), static_cast<long>(in.plan.steps * in.plan.tokens_per_step), team_size,
                  static_cast<long>(in.plan.accumulation), static_cast<long>(o.micro_batch),
                  o.team_per_model ? " per model, the models side by side (one team each)" : "",
                  train::schedule_name(o.schedule.kind), job.run_dir.c_str()));
  for (size_t i = 0; i < in.specs.size(); ++i)
    log::info("  " + in.specs[i].name + ": " + in.specs[i].genome.to_string() + " at " + in.specs[i].shape.describe() +
              (o.team_per_model ? log::format(", world ranks %d-%d", static_cast<int>(i) * team_size,
                                              static_cast<int>(i + 1) * team_size - 1)
                                : ""));
  // One measurement of the peak for the plan and the MFU.
  std::string peak_source;
  const double peak = peak_flops_per_rank(o, job, peak_source);
  dist::agree_on_errors(world, [&] { report_plan(o, job, in.specs, peak, peak_source); });
  const torch::Device device = job.gpu >= 0 ? torch::Device(torch::kCUDA, job.gpu) : torch::Device(torch::kCPU);
  if (job.dry_run) return kExitOk;

  // One team per model, or the whole world for every model in turn.
  const int color = o.team_per_model ? world.rank() / team_size : 0;
  dist::Communicator own_team;
  if (o.team_per_model) own_team = world.split(color, world.rank());
  const dist::Communicator& team = o.team_per_model ? own_team : world;
  std::unique_ptr<dist::GradientReducer> reducer;
  if (job.gpu >= 0)
    reducer = dist::make_nccl_reducer(team, job.gpu, job.nccl_timeout);
  else if (team.size() > 1)
    reducer = dist::make_mpi_reducer(team);
  log::info(
      log::format("pretrain: MFU against %.4g TFLOP/s per rank (%s); training FLOPs per token = 3 x the "
                  "forward's (arch::forward_flops_per_token: matrix products, and attention's scores and "
                  "values over the causal half of the context)",
                  peak / 1e12, peak_source.c_str()));

  // Records reach results.h5 from world rank 0 only: its own as they come, the other
  // teams' when every team has stopped.
  std::map<size_t, std::string> kept_records;  // model index -> serialized record (team leaders)
  size_t current = 0;
  const auto record = [&](const ModelSpec& spec, const ModelRecord& r, const std::string& fingerprint) {
    if (world.rank() == 0)
      write_model_record(results_path(job), spec, r, fingerprint);
    else
      kept_records[current] = serialize_record(r, fingerprint);
  };
  const Shared shared{
      o,      job,           team, *dataset, validation->split(), *validation, in.plan, in.data_fingerprint,
      device, reducer.get(), peak, record};
  const auto done = completed_models(o, job, in);
  int code = kExitOk;
  std::exception_ptr failure;
  {
    const dist::ScopedStallTimeout timed(job.stall_timeout);
    if (o.team_per_model) log::set_rank(world.rank(), team.rank() == 0);  // every team's progress
    try {
      for (size_t i = 0; i < in.specs.size() && code == kExitOk; ++i) {
        if (o.team_per_model && static_cast<int>(i) != color) continue;
        current = i;
        if (done[i]) {
          log::info("pretrain " + in.specs[i].name + ": complete; skipped");
          continue;
        }
        code = train_one(in.specs[i], shared);
      }
    } catch (const CollectiveError&) {
      // The whole team agreed on it; the other teams learn it below. Any other error is
      // one rank's alone and reaches main, which ends the job (its team would wait forever).
      if (!o.team_per_model) throw;
      failure = std::current_exception();
    }
    if (o.team_per_model) log::set_rank(world.rank(), world.rank() == 0);
  }
  if (!o.team_per_model) {
    world.barrier();
    return code;
  }
  // The teams meet: the first failure (if any) ends every rank alike, the others' records
  // go to world rank 0, and the exit code is the most urgent (75 over 0).
  const dist::ScopedStallTimeout idle(0);  // the other teams may train for hours more
  dist::agree_on_errors(world, [&] {
    if (failure) std::rethrow_exception(failure);
  });
  std::vector<std::pair<size_t, std::string>> received;  // world rank 0
  for (size_t i = 0; i < in.specs.size(); ++i) {
    const int leader = static_cast<int>(i) * team_size;
    if (leader == 0) continue;
    if (world.rank() == leader) {
      const auto it = kept_records.find(i);
      world.send(it == kept_records.end() ? std::string() : it->second, 0, kTagModelRecord);
    } else if (world.rank() == 0) {
      auto message = world.receive(leader, kTagModelRecord);
      if (!message.bytes.empty()) received.emplace_back(i, std::move(message.bytes));
    }
  }
  dist::agree_on_errors(world, [&] {
    for (const auto& [i, bytes] : received) {
      std::string fingerprint;
      const auto r = deserialize_record(bytes, fingerprint);
      write_model_record(results_path(job), in.specs[i], r, fingerprint);
    }
  });
  return static_cast<int>(world.all_reduce_max(code));
}

}  // namespace hnas::pretrain
