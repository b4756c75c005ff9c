// SPDX-License-Identifier: Apache-2.0
// What pre-training one model takes, worked out from its genome, widths and the
// [pretrain] recipe before any tensor exists: training FLOPs, the time at a peak and an
// MFU, the memory of one rank with the AdamW state replicated and sharded (ZeRO-1), and
// the checkpoint's size and write time. The dry run prints it (the plan); a run refuses a
// configuration whose rank would not fit its memory.
//
//   pretrain::PlanAssumptions where;
//   where.ranks = 16, where.on_gpu = true, where.peak_flops = 989e12;
//   const auto plan = pretrain::plan_model(genome, shape, options, where);
//   pretrain::check_plan_fits(plan, options, 141e9, "winner", "H200 memory");
#pragma once

#include <cstdint>
#include <string>

#include "hnas/arch/genome.hpp"
#include "hnas/arch/model_shape.hpp"
#include "hnas/pretrain/pretrain.hpp"
#include "hnas/train/memory_estimate.hpp"

namespace hnas::pretrain {

/// Where the model trains.
struct PlanAssumptions {
  int ranks = 1;          ///< ranks training this model together (data parallel)
  bool on_gpu = false;    ///< CUDA (bf16 autocast, reference attention) or the CPU (float32)
  double peak_flops = 0;  ///< per rank; 0: no time estimate
  double mfu = 0.4;       ///< model FLOPs utilisation the time estimate assumes
};

struct ModelPlan {
  arch::ParameterCount parameters;
  int64_t attention_layers = 0;
  int64_t steps = 0;
  int64_t tokens = 0;                  ///< trained on: steps x global batch x sequence length
  double flops_per_token = 0;          ///< training: 3 x the forward's (arch::forward_flops_per_token)
  double total_flops = 0;              ///< flops_per_token x tokens
  double seconds = 0;                  ///< total_flops / (ranks x peak x MFU); 0 without a peak
  train::MemoryEstimate memory;        ///< one rank, the AdamW state replicated
  train::MemoryEstimate memory_zero1;  ///< one rank, the AdamW state sharded over the ranks
  /// Of the activations, the attention's scores: the reference keeps its softmax
  /// [micro-batch x heads, T, T] per layer; above model::blocked::kAttentionBlock positions
  /// the blocked attention holds one block's [micro-batch x heads, block, T] at a time;
  /// the fused CPU kernel keeps none (0).
  int64_t attention_score_bytes = 0;
  int64_t checkpoint_bytes = 0;   ///< float32 weights and both AdamW moments
  double checkpoint_seconds = 0;  ///< at options.write_gbps

  /// The memory the run will use: memory_zero1 when options.shard_optimizer, else memory.
  const train::MemoryEstimate& memory_used(const PretrainOptions& options) const;
};

/// The plan of pre-training `genome` at `shape` with `options` (seq_len, global and
/// micro-batch, tokens, kernels, write_gbps) on `where`. Throws ConfigError when
/// options.global_batch is not a multiple of micro_batch x ranks, or the tokens are less
/// than one global batch (as the run itself does). Pure arithmetic: any rank, any thread.
ModelPlan plan_model(const arch::Genome& genome, const arch::ModelShape& shape, const PretrainOptions& options,
                     const PlanAssumptions& where);

/// Bytes of a checkpoint of a model with `parameters` parameters: float32 weights and two
/// float32 AdamW moments, 12 bytes each (the series and attributes are noise beside them).
int64_t checkpoint_bytes(int64_t parameters);

/// Throws ConfigError when `plan`'s memory (ZeRO-1 or not, as `options` says) exceeds
/// `available` bytes per rank: the numbers, and the keys that lower them.
/// `model` names the model, `where` the memory ("H200 memory (pretrain.device_memory_gb)").
void check_plan_fits(const ModelPlan& plan, const PretrainOptions& options, int64_t available, const std::string& model,
                     const std::string& where);

}  // namespace hnas::pretrain
