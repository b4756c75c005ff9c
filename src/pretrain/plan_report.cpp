// SPDX-License-Identifier: Apache-2.0
// The plan of a pre-training job as its log prints it, and the memory refusal.
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>

#include "hnas/core/check.hpp"
#include "hnas/core/log.hpp"
#include "hnas/dist/gradient_reducer.hpp"
#include "hnas/pretrain/resources.hpp"
#include "hnas/train/memory_estimate.hpp"
#include "hnas/train/throughput.hpp"
#include "run_plan.hpp"

namespace hnas::pretrain {
namespace {

// The bytes one rank may use, and their name; -1 when unknown.
int64_t plan_memory_bytes(const PretrainOptions& o, const PretrainJob& job, std::string& source) {
  if (o.device_memory_gb > 0) {
    source = "pretrain.device_memory_gb";
    return static_cast<int64_t>(o.device_memory_gb * 1e9);
  }
  if (job.cuda) {
    const int64_t bytes = job.gpu >= 0 ? dist::cuda_device_memory_bytes(job.gpu) : -1;
    source = bytes > 0 ? dist::cuda_device_name(job.gpu) : "the GPU (unknown here: set pretrain.device_memory_gb)";
    return bytes;
  }
  const int64_t available = train::available_memory_bytes();
  source = log::format("this node's available memory over its %d ranks", job.ranks_on_node);
  return available < 0 ? -1 : available / std::max(1, job.ranks_on_node);
}

}  // namespace

double peak_flops_per_rank(const PretrainOptions& o, const PretrainJob& job, std::string& source) {
  if (o.peak_tflops > 0) {
    source = "pretrain.peak_tflops";
    return o.peak_tflops * 1e12;
  }
  if (!job.cuda) {
    source = "float32 sgemm measured at start-up";
    return train::measure_cpu_sgemm_flops();
  }
  const std::string name = job.gpu >= 0 ? dist::cuda_device_name(job.gpu) : "";
  if (const double tflops = train::known_bf16_peak_tflops(name); tflops > 0) {
    source = name + ", bf16 dense, data sheet";
    return tflops * 1e12;
  }
  if (job.gpu < 0) {  // a dry run for GPUs on a machine without one
    source = "unknown: set pretrain.peak_tflops";
    return 0;
  }
  source = (name.empty() ? std::string("this GPU") : name) + ", bf16 product measured at start-up";
  const torch::Device device(torch::kCUDA, job.gpu);
  const int64_t n = 8192;
  auto a = torch::randn({n, n}, torch::TensorOptions().device(device).dtype(torch::kBFloat16));
  auto b = torch::randn({n, n}, torch::TensorOptions().device(device).dtype(torch::kBFloat16));
  torch::matmul(a, b);
  torch::cuda::synchronize(job.gpu);
  const auto start = std::chrono::steady_clock::now();
  const int repeats = 10;
  for (int i = 0; i < repeats; ++i) torch::matmul(a, b);
  torch::cuda::synchronize(job.gpu);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return 2.0 * static_cast<double>(n) * n * n * repeats / seconds;
}

void report_plan(const PretrainOptions& o, const PretrainJob& job, const std::vector<ModelSpec>& specs,
                 double peak_flops, const std::string& peak_source) {
  PlanAssumptions where;
  where.ranks = team_size_for(o, job.plan_ranks, specs.size());
  where.on_gpu = job.cuda;
  where.mfu = o.plan_mfu;
  std::string memory_source;
  where.peak_flops = peak_flops;
  const int64_t available = plan_memory_bytes(o, job, memory_source);
  log::info(
      log::format("plan: %d ranks (%s), %s; %d ranks per model; peak %.4g TFLOP/s per rank (%s), MFU %.0f%% "
                  "assumed (pretrain.plan_mfu); memory per rank %s (%s)",
                  job.plan_ranks, job.cuda ? "GPUs, bf16 autocast" : "CPUs, float32",
                  o.team_per_model ? "the models side by side, one team each" : "the models one after the other",
                  where.ranks, where.peak_flops / 1e12, peak_source.c_str(), 100 * where.mfu,
                  available > 0 ? train::format_bytes(available).c_str() : "unchecked", memory_source.c_str()));
  double total_seconds = 0, longest_seconds = 0, total_flops = 0;
  for (const auto& spec : specs) {
    const auto plan = plan_model(spec.genome, spec.shape, o, where);
    const auto& p = plan.parameters;
    log::info(log::format(
        "plan %s: %.3g parameters (%.3g non-embedding), %d attention layers; %ld steps of %ld "
        "sequences x %ld tokens = %.4g tokens; %.4g FLOPs per token, %.4g FLOPs in all%s",
        spec.name.c_str(), static_cast<double>(p.total), static_cast<double>(p.non_embedding),
        static_cast<int>(plan.attention_layers), static_cast<long>(plan.steps), static_cast<long>(o.global_batch),
        static_cast<long>(o.seq_len), static_cast<double>(plan.tokens), plan.flops_per_token, plan.total_flops,
        plan.seconds > 0
            ? log::format(": %s on %d ranks", log::format_duration(plan.seconds).c_str(), where.ranks).c_str()
            : ""));
    log::info(
        log::format("plan %s: memory per rank, micro-batch %ld: %s%s", spec.name.c_str(),
                    static_cast<long>(o.micro_batch), plan.memory.describe().c_str(),
                    plan.attention_score_bytes > 0
                        ? (" (the attention scores " + train::format_bytes(plan.attention_score_bytes) + ")").c_str()
                        : ""));
    if (plan.memory_zero1.total > 0)
      log::info(
          log::format("plan %s: with ZeRO-1 over %d ranks (pretrain.shard_optimizer%s): AdamW state %s, %s in all",
                      spec.name.c_str(), where.ranks, o.shard_optimizer ? ", on" : " = false: off",
                      train::format_bytes(plan.memory_zero1.optimizer_state).c_str(),
                      train::format_bytes(plan.memory_zero1.total).c_str()));
    log::info(log::format("plan %s: checkpoint %s, written in %.1f s at %.3g GB/s (pretrain.write_gbps)",
                          spec.name.c_str(), train::format_bytes(plan.checkpoint_bytes).c_str(),
                          plan.checkpoint_seconds, o.write_gbps));
    check_plan_fits(plan, o, available, spec.name, memory_source);
    total_seconds += plan.seconds;
    longest_seconds = std::max(longest_seconds, plan.seconds);
    total_flops += plan.total_flops;
  }
  const double job_seconds = o.team_per_model ? longest_seconds : total_seconds;
  if (job_seconds > 0)
    log::info(log::format("plan: %.4g FLOPs for the %zu models: %s on %d ranks, %.4g rank-hours", total_flops,
                          specs.size(), log::format_duration(job_seconds).c_str(), job.plan_ranks,
                          job_seconds * job.plan_ranks / 3600));
}

}  // namespace hnas::pretrain
