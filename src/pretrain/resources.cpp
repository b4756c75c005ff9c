// SPDX-License-Identifier: Apache-2.0
#include "hnas/pretrain/resources.hpp"

#include <algorithm>
#include <vector>

#include "hnas/core/check.hpp"
#include "hnas/core/log.hpp"
#include "hnas/model/ops.hpp"

namespace hnas::pretrain {
namespace {

// Whether the attention of `shape` runs the fused CPU kernel, which keeps a logsumexp per
// row and no scores; else the blocked one (above its block length) or the reference.
bool runs_fused_attention(const arch::ModelShape& shape, const PretrainOptions& o, bool on_gpu) {
  return !on_gpu && o.kernels == model::Kernels::Fused &&
         model::fused::attention_pays({shape.num_heads, shape.num_kv_heads, shape.head_dim});
}

}  // namespace

int64_t checkpoint_bytes(int64_t parameters) { return 12 * parameters; }

const train::MemoryEstimate& ModelPlan::memory_used(const PretrainOptions& options) const {
  return options.shard_optimizer && memory_zero1.total > 0 ? memory_zero1 : memory;
}

ModelPlan plan_model(const arch::Genome& genome, const arch::ModelShape& shape, const PretrainOptions& o,
                     const PlanAssumptions& where) {
  HNAS_CHECK(where.ranks >= 1, ConfigError, "a plan needs at least one rank, got " << where.ranks);
  const int64_t per_step = o.micro_batch * where.ranks;
  HNAS_CHECK(o.global_batch % per_step == 0, ConfigError,
             "pretrain.global_batch = " << o.global_batch << " is not divisible by the " << where.ranks
                                        << " ranks x pretrain.micro_batch = " << o.micro_batch << " (" << per_step
                                        << "); choose a multiple of " << per_step);
  ModelPlan p;
  p.parameters = arch::count_parameters(genome, shape);
  p.attention_layers = genome.count(arch::Primitive::Attention);
  p.steps = o.tokens / (o.global_batch * o.seq_len);
  HNAS_CHECK(p.steps >= 1, ConfigError,
             "pretrain.tokens = " << o.tokens << " is smaller than one global batch (pretrain.global_batch x "
                                  << "pretrain.seq_len = " << o.global_batch * o.seq_len << " tokens)");
  p.tokens = p.steps * o.global_batch * o.seq_len;
  p.flops_per_token = 3.0 * arch::forward_flops_per_token(genome, shape, o.seq_len);
  p.total_flops = p.flops_per_token * static_cast<double>(p.tokens);
  // Recomputation runs every forward twice: 4/3 of the model FLOPs go through the device.
  if (where.peak_flops > 0)
    p.seconds = p.total_flops * (o.recompute ? 4.0 / 3.0 : 1.0) / (where.ranks * where.peak_flops * where.mfu);

  // Activations are counted at 4 bytes an element on the GPU too: autocast keeps bf16
  // copies of the matrix products' inputs but float32 for the norms, the softmax and the loss.
  p.memory = train::estimate_training_memory(genome, shape, o.micro_batch, o.seq_len, 4, where.ranks, o.recompute);
  if (p.attention_layers > 0 && !runs_fused_attention(shape, o, where.on_gpu)) {
    const int64_t rows = o.micro_batch * shape.num_heads;
    if (o.seq_len > model::blocked::kAttentionBlock)
      // One block's scores at a time, in its backward: scores, probabilities, their
      // gradient (float32) and the bf16 copies of both for the products, 16 bytes an element.
      p.attention_score_bytes = rows * model::blocked::kAttentionBlock * o.seq_len * 16;
    else
      // The reference keeps its softmax (float32) per layer, and on the GPU its bf16 copy.
      // Recomputed, one layer's at a time.
      p.attention_score_bytes =
          (o.recompute ? 1 : p.attention_layers) * rows * o.seq_len * o.seq_len * (where.on_gpu ? 6 : 4);
    p.memory.activations += p.attention_score_bytes;
  }
  if (where.on_gpu) p.memory.parameters += 2 * p.parameters.total;  // autocast's bf16 copies of the weights
  p.memory.total = p.memory.parameters + p.memory.gradients + p.memory.optimizer_state + p.memory.activations;
  if (where.ranks > 1) {
    p.memory_zero1 = p.memory;
    p.memory_zero1.optimizer_state = (p.memory.optimizer_state + where.ranks - 1) / where.ranks;
    p.memory_zero1.total = p.memory_zero1.parameters + p.memory_zero1.gradients + p.memory_zero1.optimizer_state +
                           p.memory_zero1.activations;
  }
  p.checkpoint_bytes = checkpoint_bytes(p.parameters.total);
  p.checkpoint_seconds = static_cast<double>(p.checkpoint_bytes) / (o.write_gbps * 1e9);
  return p;
}

void check_plan_fits(const ModelPlan& plan, const PretrainOptions& o, int64_t available, const std::string& model,
                     const std::string& where) {
  const auto& need = plan.memory_used(o);
  if (available <= 0 || need.total <= available) return;
  std::vector<std::string> remedies;
  if (o.micro_batch > 1) remedies.push_back("lower pretrain.micro_batch (now " + std::to_string(o.micro_batch) + ")");
  if (!o.recompute) remedies.push_back("set pretrain.recompute = true (activation checkpointing)");
  if (!o.shard_optimizer && plan.memory_zero1.total > 0)
    remedies.push_back("set pretrain.shard_optimizer = true (ZeRO-1: " + train::format_bytes(plan.memory_zero1.total) +
                       ")");
  if (remedies.empty() || plan.attention_score_bytes > need.total / 4)
    remedies.push_back("lower pretrain.seq_len (now " + std::to_string(o.seq_len) + ")" +
                       (plan.attention_score_bytes > need.total / 4
                            ? ": the attention scores alone take " + train::format_bytes(plan.attention_score_bytes)
                            : ""));
  std::string text;
  for (size_t i = 0; i < remedies.size(); ++i)
    text += (i == 0 ? "" : i + 1 == remedies.size() ? ", or " : ", ") + remedies[i];
  throw ConfigError("pre-training " + model + " needs " + need.describe() + " per rank, more than the " +
                    train::format_bytes(available) + " of " + where + "; " + text);
}

}  // namespace hnas::pretrain
