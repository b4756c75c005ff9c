// Tests of the training-memory estimate: its arithmetic, and the resident memory a real
// training step of a moderate model reaches against it.
#include "hnas/train/memory_estimate.hpp"

#include <gtest/gtest.h>
#include <malloc.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "hnas/core/error.hpp"
#include "hnas/core/process.hpp"
#include "hnas/model/hybrid_model.hpp"
#include "hnas/train/throughput.hpp"
#include "hnas/train/trainer.hpp"

namespace {

using namespace hnas;

// The shape of the real-step test: d_model 256, 8 + 2 x 4 heads of 32, SwiGLU 688, vocab 1000.
arch::ModelShape moderate_shape() {
  arch::ModelShape s;
  s.vocab_size = 1000;
  s.d_model = 256;
  s.num_heads = 8;
  s.num_kv_heads = 4;
  s.head_dim = 32;
  s.mlp_hidden = arch::mad_swiglu_hidden(256);
  s.max_seq_len = 256;
  return s;
}

// A function, not a global: the primitive registry may not be initialised yet at static-init time.
arch::Genome genome() { return arch::Genome::parse("AMAMAMAM"); }
constexpr int64_t kRows = 8, kSeq = 256;

TEST(MemoryEstimate, weights_gradients_and_adamw_state_follow_the_parameter_count) {
  const auto shape = moderate_shape();
  const int64_t n = arch::count_parameters(genome(), shape).total;
  const auto m = train::estimate_training_memory(genome(), shape, kRows, kSeq);
  EXPECT_EQ(m.parameters, 4 * n);
  EXPECT_EQ(m.gradients, 4 * n);
  EXPECT_GE(m.optimizer_state, 8 * n);
  EXPECT_LT(m.optimizer_state, 8 * n + 8 * 16 * 64);  // FusedAdamW's alignment padding only
  EXPECT_EQ(m.total, m.parameters + m.gradients + m.optimizer_state + m.activations);
  // A team's MPI reducer keeps a flat copy of the gradients.
  EXPECT_EQ(train::estimate_training_memory(genome(), shape, kRows, kSeq, 4, /*team_size=*/2).gradients, 8 * n);
  const auto half = train::estimate_training_memory(genome(), shape, kRows, kSeq, /*element_bytes=*/2);
  EXPECT_EQ(half.parameters, 2 * n);
}

TEST(MemoryEstimate, activations_grow_linearly_with_rows_sequence_and_layers) {
  const auto shape = moderate_shape();
  const auto at_rows = [&](int64_t rows) {
    return train::estimate_training_memory(genome(), shape, rows, kSeq).activations;
  };
  EXPECT_NEAR(at_rows(3) - at_rows(2), at_rows(2) - at_rows(1), 2);
  EXPECT_NEAR(static_cast<double>(at_rows(16)) / static_cast<double>(at_rows(8)), 2.0, 0.01);
  EXPECT_EQ(train::estimate_training_memory(genome(), shape, 16, kSeq).optimizer_state,
            train::estimate_training_memory(genome(), shape, 1, kSeq).optimizer_state);
  // The fused attention keeps no [T, T] scores: linear in the sequence length too.
  const auto at_seq = [&](int64_t seq) {
    return train::estimate_training_memory(genome(), shape, kRows, seq).activations;
  };
  EXPECT_NEAR(static_cast<double>(at_seq(1024)) / static_cast<double>(at_seq(512)), 2.0, 0.01);

  // Each further SwiGLU layer keeps its norm input and 1/rms, norm output, [gate | up] and
  // hidden: (2 d + 1 + 3 h) floats per token; an attention layer the same norm tensors,
  // qkv, output and a logsumexp per head; a quarter more is the heap's fragmentation.
  const auto with = [&](const char* genome) {
    return train::estimate_training_memory(arch::Genome::parse(genome), shape, kRows, kSeq).activations;
  };
  const int64_t tokens = kRows * kSeq, d = shape.d_model, h = shape.mlp_hidden;
  EXPECT_NEAR(with("AM2") - with("AM"), 4 * tokens * (2 * d + 1 + 3 * h) * 5 / 4, 2);
  EXPECT_NEAR(with("AM3") - with("AM2"), with("AM2") - with("AM"), 2);
  const int64_t qkv = (8 + 2 * 4) * 32, out = 8 * 32;
  EXPECT_NEAR(with("A2M") - with("AM"), 4 * tokens * (2 * d + 1 + qkv + out + 8) * 5 / 4, 2);
}

TEST(MemoryEstimate, counts_the_logits_and_their_gradient) {
  auto shape = moderate_shape();
  const auto small = train::estimate_training_memory(genome(), shape, kRows, kSeq);
  shape.vocab_size *= 2;
  const auto large = train::estimate_training_memory(genome(), shape, kRows, kSeq);
  // Two [tokens, vocab] float32 tensors live at once (logits, then the cross-entropy's saved gradient and d_logits).
  EXPECT_NEAR(large.activations - small.activations, 2 * 4 * kRows * kSeq * 1000 * 5 / 4, 2);
}

TEST(MemoryEstimate, describe_names_every_part_and_the_total) {
  train::MemoryEstimate m;
  m.parameters = int64_t{5} << 20;
  m.gradients = int64_t{5} << 20;
  m.optimizer_state = int64_t{10} << 20;
  m.activations = (int64_t{3} << 30) + (int64_t{1} << 29);
  m.total = m.parameters + m.gradients + m.optimizer_state + m.activations;
  EXPECT_EQ(m.describe(),
            "parameters 5.0 MiB + gradients 5.0 MiB + AdamW state 10.0 MiB + activations 3.5 GiB = 3.5 GiB");
  EXPECT_EQ(train::format_bytes(512), "512 B");
  EXPECT_EQ(train::format_bytes(1536), "1.5 KiB");
}

TEST(MemoryEstimate, rejects_impossible_steps) {
  const auto shape = moderate_shape();
  EXPECT_THROW(train::estimate_training_memory(genome(), shape, 0, kSeq), ConfigError);
  EXPECT_THROW(train::estimate_training_memory(genome(), shape, kRows, 0), ConfigError);
  EXPECT_THROW(train::estimate_training_memory(arch::Genome(), shape, kRows, kSeq), ConfigError);
  auto bad = shape;
  bad.num_kv_heads = 3;  // does not divide 8 heads
  EXPECT_THROW(train::estimate_training_memory(genome(), bad, kRows, kSeq), ConfigError);
}

/// A field of /proc/self/status in bytes ("VmRSS", "VmHWM").
int64_t status_bytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1)) * 1024;
  return -1;
}

TEST(AvailableMemory, is_positive_and_within_the_machine) {
  const int64_t available = train::available_memory_bytes();
  std::printf("  available to this process: %s\n", train::format_bytes(available).c_str());
  EXPECT_GT(available, 0);
  std::ifstream in("/proc/meminfo");
  std::string name;
  long long total_kib = 0;
  in >> name >> total_kib;
  ASSERT_EQ(name, "MemTotal:");
  EXPECT_LE(available, total_kib * 1024);
}

/// Peak resident memory from now on: the kernel's high-water mark, reset through
/// /proc/self/clear_refs, or where that cannot be written a thread sampling VmRSS.
class PeakRss {
 public:
  PeakRss() {
    std::ofstream reset("/proc/self/clear_refs");
    reset << "5";
    reset.flush();
    if (reset && status_bytes("VmHWM") <= status_bytes("VmRSS") + (1 << 20)) return;
    sampled_ = true;
    sampler_ = std::thread([this] {
      while (!done_) {
        peak_ = std::max<int64_t>(peak_, status_bytes("VmRSS"));
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
  }
  ~PeakRss() { stop(); }
  /// The peak until now, the sampler going on.
  int64_t peak_so_far() const { return sampled_ ? peak_.load() : status_bytes("VmHWM"); }
  /// The peak, the sampler stopped.
  int64_t peak() {
    stop();
    return peak_so_far();
  }

 private:
  void stop() {
    done_ = true;
    if (sampler_.joinable()) sampler_.join();
  }
  bool sampled_ = false;
  std::atomic<bool> done_{false};
  std::atomic<int64_t> peak_{0};
  std::thread sampler_;
};

/// Random next-token rows over the moderate vocabulary.
class RandomTokens : public train::BatchSource {
 public:
  explicit RandomTokens(int64_t rows) : rows_(rows), generator_(at::detail::createCPUGenerator(7)) {}
  train::Batch next() override {
    const auto seq = torch::randint(0, 1000, {rows_, kSeq + 1}, generator_, torch::kLong);
    return {seq.narrow(1, 0, kSeq).contiguous(), seq.narrow(1, 1, kSeq).contiguous()};
  }

 private:
  int64_t rows_;
  at::Generator generator_;
};

train::TrainResult train_steps(int64_t rows, int64_t steps, std::function<bool()> should_stop = {}) {
  model::HybridModelOptions o;
  o.genome = genome();
  o.shape = moderate_shape();
  o.seed = 3;
  model::HybridModel model(o);
  RandomTokens data(rows);
  train::TrainerOptions t;
  t.schedule.total_steps = steps;
  t.schedule.peak_lr = 1e-3;
  t.weight_decay = 0.1;
  train::TrainingContext context;
  context.should_stop = std::move(should_stop);
  return train::train_model(model, data, nullptr, t, context);
}

TEST(MemoryEstimate, a_real_training_step_peaks_within_its_estimate) {
  // As the job runs: freed blocks stay in the heap (main calls this) and are reused.
  hnas::keep_freed_memory();
  // A first step in this shape faults in LibTorch's and the BLAS's code and buffers and
  // starts the thread pool: that is not the model's memory.
  ASSERT_EQ(train_steps(1, 1).status, train::RunStatus::Completed);
  malloc_trim(0);
  const int64_t before = status_bytes("VmRSS");
  ASSERT_GT(before, 0);

  PeakRss peak;
  // The model, its AdamW state and a dozen steps: the heap's fragmentation grows over the
  // first steps, then levels off (about 1.3x the live peak at this size).
  int polls = 0;
  int64_t first_step = 0;
  const auto result = train_steps(kRows, 12, [&] {
    if (++polls == 2) first_step = peak.peak_so_far() - before;  // polled before each step
    return false;
  });
  const int64_t growth = peak.peak() - before;
  ASSERT_EQ(result.status, train::RunStatus::Completed);

  const auto estimate = train::estimate_training_memory(genome(), moderate_shape(), kRows, kSeq);
  const double ratio = static_cast<double>(estimate.total) / static_cast<double>(growth);
  std::printf(
      "  %ld x %ld tokens, %s: estimate %s\n  measured peak resident growth: %s after one step, %s after %ld "
      "(estimate / measured %.2f)\n",
      static_cast<long>(kRows), static_cast<long>(kSeq), genome().to_run_length().c_str(), estimate.describe().c_str(),
      train::format_bytes(first_step).c_str(), train::format_bytes(growth).c_str(), static_cast<long>(result.steps),
      ratio);
  EXPECT_GE(ratio, 0.5) << "the estimate is too low: configurations that cannot fit would be let through";
  EXPECT_LE(ratio, 2.5) << "the estimate is too high: configurations that fit would be refused";
}

}  // namespace
