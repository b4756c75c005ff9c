// SPDX-License-Identifier: Apache-2.0
// `hnas pretrain`: the scaled pre-training of the extrapolated winner(s) and the baseline
// on the same token data and budget, each model data-parallel: one after the other over
// every rank of the job, or side by side, one team of ranks per model. Every model
// checkpoints under DIR/checkpoints/<model>/ and resumes exactly; its curves and summary
// go to /pretrain/<model> of results.h5.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "hnas/arch/genome.hpp"
#include "hnas/extrapolate/target.hpp"
#include "hnas/model/ops.hpp"
#include "hnas/train/schedule.hpp"

namespace hnas::dist {
class Communicator;
}

namespace hnas::pretrain {

/// One model to pre-train.
struct ModelSpec {
  std::string name;  ///< "winner", "baseline", or the architecture
  arch::Genome genome;
  arch::ModelShape shape;
};

struct PretrainOptions {
  /// Architectures to train at `target`; empty: the winner and the baseline of /extrapolate.
  std::vector<arch::Genome> archs;
  extrapolate::TargetShape target;                    ///< with explicit archs: their width (the [extrapolate] keys)
  std::vector<std::string> train_paths, valid_paths;  ///< token shards (.bin, .h5[:/dataset])
  double val_fraction = 0.01;  ///< without valid_paths: the last fraction of every training shard
  int64_t seq_len = 1024;
  int64_t global_batch = 32;   ///< sequences per optimizer step, all ranks together
  int64_t micro_batch = 4;     ///< sequences per forward/backward on one rank
  int64_t tokens = 0;          ///< training tokens per model (a whole number of global batches is taken)
  train::LrSchedule schedule;  ///< kind, peak/min lr, decay fraction and shape (steps filled from tokens)
  double warmup_fraction = 0.25;
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8;
  double grad_clip = 1.0;
  int64_t eval_every = 100;  ///< steps between validation passes (0: only at the end)
  int64_t val_windows = 64;
  int64_t log_every = 10;
  int64_t checkpoint_every = 0;    ///< steps (0: only by time, at a stop and at the end)
  double checkpoint_minutes = 30;  ///< also at least this often (0: not by time)
  int64_t keep_checkpoints = 2;
  uint64_t seed = 0;
  double peak_tflops = 0;  ///< per rank; 0: the GPU's from a table, or sgemm measured on the CPU
  /// Write bandwidth of the checkpoint file system (GB/s), assumed by the plan and by the
  /// deadline until a checkpoint write has been timed.
  double write_gbps = 1.0;
  /// Memory of one rank's device (GB) the plan checks against; 0: the GPU's own, or on the
  /// CPU this node's available memory shared by its ranks (unchecked where unknown).
  double device_memory_gb = 0;
  double plan_mfu = 0.4;  ///< the MFU the plan's time estimate assumes
  /// Data parallelism: reduce gradient buckets during the backward pass (else after it).
  bool overlap = true;
  double bucket_mb = 25;         ///< bucket size for the overlapped reduction
  bool shard_optimizer = false;  ///< ZeRO-1: each rank holds 1/ranks of the AdamW state
  /// Split the world into one team per model, training the models side by side (else every
  /// rank trains each model in turn).
  bool team_per_model = false;
  model::Kernels kernels = model::Kernels::Fused;
  /// Activation checkpointing: each sublayer's activations recomputed in the backward pass.
  bool recompute = false;
};

/// Where the stage runs (from the pipeline's RunContext).
struct PretrainJob {
  const dist::Communicator* world = nullptr;
  int gpu = -1;
  int ranks_on_node = 1;
  double nccl_timeout = 600;
  double stall_timeout = 0;
  std::string run_dir;
  bool dry_run = false;
  bool cuda = false;   ///< run.device = cuda (a dry run plans for it without a GPU: gpu is -1 then)
  int plan_ranks = 1;  ///< the ranks the plan is made for (--ranks on a dry run, else the world's)
  std::function<void()> hold_run_directory;
  std::string config;
};

/// Pre-trains every model in order, skipping finished ones; returns 0, or kExitResumable
/// after a stop signal (a checkpoint of the model in training written first). Collective
/// over job.world. Throws CollectiveError (exit 2) on every rank for a bad configuration:
/// a token budget below one global batch, a global batch not divisible by ranks x
/// micro-batch, no /extrapolate and no explicit architectures, a checkpoint of another
/// model, schedule or data.
int run_pretrain(const PretrainOptions& options, const PretrainJob& job);

/// True when every model's /pretrain/<model> is complete with the same identity.
/// Collective over job.world; rank 0 reads the file.
bool pretrain_complete(const PretrainOptions& options, const PretrainJob& job);

}  // namespace hnas::pretrain
