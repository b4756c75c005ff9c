// SPDX-License-Identifier: Apache-2.0
// Pre-tokenized text for language-model training: a list of shards (.bin and HDF5, in any
// mix) behind one interface, a train/validation split, and a deterministic sampler of
// (input, target) windows. Torch-free: batches are row-major std::vector<int64_t>.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hnas/data/token_shard.hpp"

namespace hnas::data {

/// The shards of one corpus, in the order given. Windows never cross a shard boundary:
/// shards are independent files (often separately shuffled documents), so a window is
/// always read from one shard and the interface addresses tokens as (shard, offset).
/// Rank-local; not thread-safe when HDF5 shards are present (the HDF5 library is not).
class TokenDataset {
 public:
  /// Opens and validates every shard (see open_token_shard): every token must lie in
  /// [0, vocab_size). Throws ConfigError for an empty list, vocab_size < 1, a shard whose
  /// recorded tokenizer has another vocabulary, or shards of two tokenizers; InputError
  /// (naming the file) for any unreadable, malformed or out-of-vocabulary shard.
  TokenDataset(const std::vector<std::string>& shard_specs, int64_t vocab_size);

  size_t num_shards() const { return shards_.size(); }
  const TokenShard& shard(size_t index) const { return *shards_.at(index); }
  /// Total tokens over all shards.
  int64_t num_tokens() const { return num_tokens_; }
  int64_t vocab_size() const { return vocab_size_; }
  /// The tokenizer the shards record (unknown when none records one).
  const ShardTokenizer& tokenizer() const { return tokenizer_; }

  /// Tokens [offset, offset + count) of shard `shard`; the range must lie inside it.
  std::vector<int64_t> read(size_t shard, int64_t offset, int64_t count) const;

 private:
  std::vector<std::unique_ptr<TokenShard>> shards_;
  int64_t num_tokens_ = 0;
  int64_t vocab_size_ = 0;
  ShardTokenizer tokenizer_;
  std::string tokenizer_shard_;  // the first shard recording it, for messages
};

/// How tokens are divided between training and validation.
enum class SplitMode {
  ByShard,  ///< the last `val_shards` shards are validation, the others training
  ByRange,  ///< the last `val_fraction` of every shard's tokens is validation
};

struct SplitOptions {
  SplitMode mode = SplitMode::ByRange;
  int64_t val_shards = 1;      ///< ByShard: in [0, num_shards)
  double val_fraction = 0.05;  ///< ByRange: in [0, 1); floor(size * fraction) tokens per shard
};

/// Tokens [begin, end) of one shard, all in one split.
struct ShardRange {
  size_t shard = 0;
  int64_t begin = 0;
  int64_t end = 0;
};

/// Training and validation ranges; they never overlap, and every window is drawn inside
/// one range, so no window mixes the two splits.
struct DataSplit {
  std::vector<ShardRange> train;
  std::vector<ShardRange> validation;
};

/// The split of a corpus given as training shards followed by `valid_shards` validation
/// shards: those shards (ByShard), or with none the last `val_fraction` of every shard.
SplitOptions split_of(size_t valid_shards, double val_fraction);

/// Divides `dataset` as `options` says. Throws ConfigError for out-of-range options.
DataSplit split_dataset(const TokenDataset& dataset, const SplitOptions& options);

/// Where a window starts: seq_len + 1 tokens from (shard, offset).
struct Window {
  size_t shard = 0;
  int64_t offset = 0;
  bool operator==(const Window& other) const { return shard == other.shard && offset == other.offset; }
};

/// A batch of windows: inputs[b * seq_len + t] = token offset + t of window b, and
/// targets[b * seq_len + t] = token offset + t + 1 (next-token prediction).
struct Batch {
  int64_t batch_size = 0;
  int64_t seq_len = 0;
  std::vector<int64_t> inputs;   ///< row-major [batch_size, seq_len]
  std::vector<int64_t> targets;  ///< row-major [batch_size, seq_len]
  std::vector<Window> windows;   ///< the source of each row
};

struct SamplerOptions {
  int64_t seq_len = 256;
  int64_t batch_size = 8;
  uint64_t seed = 0;
  SplitOptions split;
  /// Size of the fixed validation set. Capped at the number of distinct window starts
  /// in the validation split; 0 disables validation.
  int64_t num_val_windows = 256;
};

/// Draws training windows uniformly (with replacement) over every window start in the
/// training split, and serves a fixed validation set. Keeps a reference to `dataset`,
/// which must outlive it. Rank-local; see TokenDataset for threads.
///
///   TokenDataset data({"corpus_train_000000.bin", "corpus_val_000000.bin"}, 257);
///   WindowSampler sampler(data, options);             // options.split.mode = ByShard
///   for (uint64_t step = start; step < steps; ++step) {
///     Batch b = sampler.train_batch(step, /*stream=*/rank);
///   }
class WindowSampler {
 public:
  /// Throws ConfigError when seq_len or batch_size < 1, the split options are invalid, the
  /// training split holds no window of seq_len + 1 tokens, or validation is requested and
  /// the validation split holds none.
  WindowSampler(const TokenDataset& dataset, const SamplerOptions& options);

  /// The training batch of `step`. A pure function of (seed, step, stream): resuming at a
  /// step reproduces the batches an uninterrupted run would have drawn, and data-parallel
  /// ranks pass their rank as `stream` to draw different rows.
  Batch train_batch(uint64_t step, uint64_t stream = 0) const;

  /// The validation windows, evenly spaced over the validation split's window starts and
  /// independent of the seed, so every candidate is scored on the same tokens. Windows are
  /// disjoint when num_val_windows * (seq_len + 1) <= the validation tokens of a range.
  const std::vector<Window>& val_windows() const { return val_windows_; }
  /// ceil(val_windows().size() / batch_size).
  int64_t num_val_batches() const;
  /// Validation batch `index` in [0, num_val_batches()): windows index * batch_size
  /// onwards; the last batch holds the remainder and may be smaller.
  Batch val_batch(int64_t index) const;

  const DataSplit& split() const { return split_; }
  const SamplerOptions& options() const { return options_; }
  /// Distinct window starts available to training.
  int64_t num_train_starts() const { return train_starts_.empty() ? 0 : train_starts_.back(); }

 private:
  Window train_window(int64_t start_index) const;
  Batch gather(const std::vector<Window>& windows) const;

  const TokenDataset& dataset_;
  SamplerOptions options_;
  DataSplit split_;
  std::vector<int64_t> train_starts_;  // inclusive prefix sums of window starts per range
  std::vector<Window> val_windows_;
};

}  // namespace hnas::data
