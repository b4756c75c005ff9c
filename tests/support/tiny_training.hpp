// A model and a learnable data stream small enough for training tests: shared by the
// trainer tests and the data-parallel MPI tests.
#pragma once

#include <torch/torch.h>

#include "hnas/model/hybrid_model.hpp"
#include "hnas/train/metrics.hpp"
#include "hnas/train/trainer.hpp"

namespace hnas::testing {

/// A fixed-sequence copy task over vocabulary 13: target = input shifted by one on a
/// repeating pattern, 8 rows of 16 tokens per batch, drawn from a seeded generator (every
/// instance with the same seed yields the same batches). `unscored_prefix` > 0 marks that
/// many leading target positions of every row, and one more in row 0, as unscored.
class PatternBatches : public train::BatchSource {
 public:
  explicit PatternBatches(uint64_t seed = 5, int64_t unscored_prefix = 0)
      : generator_(at::detail::createCPUGenerator(seed)), unscored_prefix_(unscored_prefix) {}

  train::Batch next() override {
    auto start = torch::randint(0, kVocab, {8, 1}, generator_, torch::kLong);
    auto seq = (start + torch::arange(17, torch::kLong).unsqueeze(0) * 3) % kVocab;
    auto targets = seq.narrow(1, 1, 16).clone();
    if (unscored_prefix_ > 0) {
      targets.narrow(1, 0, unscored_prefix_).fill_(train::kIgnoreIndex);
      targets[0][7] = train::kIgnoreIndex;
    }
    return {seq.narrow(1, 0, 16), targets};
  }

  static constexpr int64_t kVocab = 13;

 private:
  at::Generator generator_;
  int64_t unscored_prefix_;
};

/// A width-32 model of `genome` over PatternBatches' vocabulary.
inline model::HybridModel tiny_model(uint64_t seed = 1, const char* genome = "AM") {
  model::HybridModelOptions o;
  o.genome = arch::Genome::parse(genome);
  o.shape.vocab_size = PatternBatches::kVocab;
  o.shape.d_model = 32;
  o.shape.num_heads = 4;
  o.shape.num_kv_heads = 2;
  o.shape.head_dim = 8;
  o.shape.mlp_hidden = 64;
  o.seed = seed;
  return model::HybridModel(o);
}

}  // namespace hnas::testing
