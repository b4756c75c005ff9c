// SPDX-License-Identifier: Apache-2.0
#include "hnas/train/evaluation.hpp"

#include <algorithm>

#include "hnas/core/error.hpp"
#include "hnas/core/log.hpp"

namespace hnas::train {
namespace {

// One rank's rows per forward pass, the sequence length and the vocabulary of the
// largest training run the options make.
struct RunShape {
  int64_t rows = 1, seq_len = 1, vocab = 2;
};

RunShape largest_run(const EvaluationOptions& o, int team_size) {
  const auto micro = std::max<int64_t>(1, o.recipe.trainer.micro_batches);
  const auto per_rank = [&](int64_t batch) {
    const int64_t share = (batch + team_size - 1) / team_size;
    return std::max<int64_t>(1, (share + micro - 1) / micro);
  };
  if (o.objective == Objective::Tokens) return {per_rank(o.tokens.batch_size), o.tokens.seq_len, o.tokens.vocab_size};
  RunShape largest;
  for (const auto& s : selected_settings(o.mad)) {
    const RunShape run{per_rank(o.mad.batch_size), s.input_length(), s.vocab_size};
    if (run.rows * run.seq_len * std::max<int64_t>(run.vocab, 64) >
        largest.rows * largest.seq_len * std::max<int64_t>(largest.vocab, 64))
      largest = run;
  }
  return largest;
}

}  // namespace

const char* objective_name(Objective objective) {
  return objective == Objective::Mad ? "MAD mean accuracy" : "token validation loss";
}

MemoryEstimate estimate_evaluation_memory(const arch::Genome& genome, const EvaluationOptions& options, int team_size) {
  const auto run = largest_run(options, team_size);
  auto shape = options.shape;
  shape.vocab_size = run.vocab;
  shape.max_seq_len = run.seq_len;
  return estimate_training_memory(genome, shape, run.rows, run.seq_len, 4, team_size);
}

std::string describe_training_shape(const arch::Genome& genome, const EvaluationOptions& options, int team_size) {
  const auto run = largest_run(options, team_size);
  return log::format("%s (d_model %ld, %ld heads, mlp_hidden %ld) on %ld rows of %ld tokens per rank",
                     genome.to_string().c_str(), static_cast<long>(options.shape.d_model),
                     static_cast<long>(options.shape.num_heads), static_cast<long>(options.shape.mlp_hidden),
                     static_cast<long>(run.rows), static_cast<long>(run.seq_len));
}

void check_memory_fits(const arch::Genome& genome, const EvaluationOptions& options, int team_size, int ranks_on_node) {
  if (options.on_gpu) return;
  const int64_t available = available_memory_bytes();
  if (available < 0) return;  // nothing readable: the allocator will tell
  const int64_t per_rank = available / std::max(1, ranks_on_node);
  const auto need = estimate_evaluation_memory(genome, options, team_size);
  if (need.total <= per_rank) return;
  const char* batch_key = options.objective == Objective::Tokens ? "tokens.batch_size" : "mad.batch_size";
  throw ConfigError("training " + describe_training_shape(genome, options, team_size) + " needs about " +
                    need.describe() + " per rank, but " + format_bytes(per_rank) + " is available to each of the " +
                    std::to_string(ranks_on_node) + " ranks on this node; lower " + batch_key +
                    " (or raise train.micro_batches), narrow the model (model.d_model, model.mlp_hidden), or run "
                    "fewer ranks per node");
}

}  // namespace hnas::train
