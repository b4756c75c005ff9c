// SPDX-License-Identifier: Apache-2.0
#include "hnas/data/token_dataset.hpp"

#include <algorithm>
#include <cmath>

#include "hnas/core/check.hpp"
#include "hnas/core/rng.hpp"

namespace hnas::data {
namespace {

// Number of windows of seq_len + 1 tokens that fit in `range`.
int64_t window_starts(const ShardRange& range, int64_t seq_len) {
  return std::max<int64_t>(0, range.end - range.begin - seq_len);
}

std::vector<int64_t> prefix_starts(const std::vector<ShardRange>& ranges, int64_t seq_len) {
  std::vector<int64_t> prefix;
  int64_t total = 0;
  for (const ShardRange& range : ranges) {
    total += window_starts(range, seq_len);
    prefix.push_back(total);
  }
  return prefix;
}

// Global start index -> window, with `prefix` from prefix_starts over `ranges`.
Window locate(const std::vector<ShardRange>& ranges, const std::vector<int64_t>& prefix, int64_t index) {
  const auto it = std::upper_bound(prefix.begin(), prefix.end(), index);
  HNAS_ASSERT(it != prefix.end(), "window index " << index << " beyond " << prefix.back());
  const auto r = static_cast<size_t>(it - prefix.begin());
  const int64_t before = r == 0 ? 0 : prefix[r - 1];
  return Window{ranges[r].shard, ranges[r].begin + (index - before)};
}

int64_t total_tokens(const std::vector<ShardRange>& ranges) {
  int64_t total = 0;
  for (const ShardRange& range : ranges) total += range.end - range.begin;
  return total;
}

}  // namespace

TokenDataset::TokenDataset(const std::vector<std::string>& shard_specs, int64_t vocab_size) : vocab_size_(vocab_size) {
  HNAS_CHECK(!shard_specs.empty(), ConfigError, "no token shards given");
  HNAS_CHECK(vocab_size >= 1, ConfigError, "vocab_size must be positive, got " << vocab_size);
  for (const std::string& spec : shard_specs) {
    shards_.push_back(open_token_shard(spec, vocab_size));
    num_tokens_ += shards_.back()->size();
    const auto made_by = shards_.back()->tokenizer();
    if (!made_by.known()) continue;
    if (!tokenizer_.known()) {
      tokenizer_ = made_by;
      tokenizer_shard_ = spec;
    }
    HNAS_CHECK(made_by.fingerprint == tokenizer_.fingerprint, ConfigError,
               "token shards of two tokenizers: " << spec << " and " << tokenizer_shard_
                                                  << " have the same vocabulary size but another tokenizer "
                                                     "fingerprint; train and validate on shards of one tokenizer");
  }
}

std::vector<int64_t> TokenDataset::read(size_t shard, int64_t offset, int64_t count) const {
  std::vector<int64_t> tokens(static_cast<size_t>(std::max<int64_t>(count, 0)));
  shards_.at(shard)->read(offset, count, tokens.data());
  return tokens;
}

SplitOptions split_of(size_t valid_shards, double val_fraction) {
  SplitOptions split;
  if (valid_shards == 0) {
    split.mode = SplitMode::ByRange;
    split.val_fraction = val_fraction;
  } else {
    split.mode = SplitMode::ByShard;
    split.val_shards = static_cast<int64_t>(valid_shards);
  }
  return split;
}

DataSplit split_dataset(const TokenDataset& dataset, const SplitOptions& options) {
  DataSplit split;
  const auto num_shards = static_cast<int64_t>(dataset.num_shards());
  if (options.mode == SplitMode::ByShard) {
    HNAS_CHECK(
        options.val_shards >= 0 && options.val_shards < num_shards, ConfigError,
        "val_shards must be in [0, " << num_shards << ") so that training keeps a shard, got " << options.val_shards);
    for (int64_t i = 0; i < num_shards; ++i) {
      const ShardRange range{static_cast<size_t>(i), 0, dataset.shard(static_cast<size_t>(i)).size()};
      (i < num_shards - options.val_shards ? split.train : split.validation).push_back(range);
    }
    return split;
  }
  HNAS_CHECK(options.val_fraction >= 0.0 && options.val_fraction < 1.0, ConfigError,
             "val_fraction must be in [0, 1), got " << options.val_fraction);
  for (size_t i = 0; i < dataset.num_shards(); ++i) {
    const int64_t size = dataset.shard(i).size();
    const auto val = static_cast<int64_t>(std::floor(static_cast<double>(size) * options.val_fraction));
    split.train.push_back(ShardRange{i, 0, size - val});
    if (val > 0) split.validation.push_back(ShardRange{i, size - val, size});
  }
  return split;
}

WindowSampler::WindowSampler(const TokenDataset& dataset, const SamplerOptions& options)
    : dataset_(dataset), options_(options) {
  HNAS_CHECK(options.seq_len >= 1, ConfigError, "seq_len must be positive, got " << options.seq_len);
  HNAS_CHECK(options.batch_size >= 1, ConfigError, "batch_size must be positive, got " << options.batch_size);
  HNAS_CHECK(options.num_val_windows >= 0, ConfigError,
             "num_val_windows must not be negative, got " << options.num_val_windows);
  split_ = split_dataset(dataset, options.split);
  const int64_t window = options.seq_len + 1;

  train_starts_ = prefix_starts(split_.train, options.seq_len);
  HNAS_CHECK(num_train_starts() > 0, ConfigError,
             "the training split (" << total_tokens(split_.train) << " tokens in " << split_.train.size()
                                    << " ranges) holds no window of seq_len + 1 = " << window << " tokens");

  if (options.num_val_windows == 0) return;
  const std::vector<int64_t> val_prefix = prefix_starts(split_.validation, options.seq_len);
  const int64_t starts = val_prefix.empty() ? 0 : val_prefix.back();
  HNAS_CHECK(starts > 0, ConfigError,
             "the validation split (" << total_tokens(split_.validation) << " tokens in " << split_.validation.size()
                                      << " ranges) holds no window of seq_len + 1 = " << window
                                      << " tokens; enlarge it or set num_val_windows = 0");
  // Centre of each of `count` equal strides over the starts: the same windows for every
  // seed and candidate, spread over the whole split.
  const int64_t count = std::min(options.num_val_windows, starts);
  val_windows_.reserve(static_cast<size_t>(count));
  for (int64_t j = 0; j < count; ++j) {
    const auto index = static_cast<int64_t>(
        (static_cast<unsigned __int128>(2 * j + 1) * static_cast<uint64_t>(starts)) / static_cast<uint64_t>(2 * count));
    val_windows_.push_back(locate(split_.validation, val_prefix, index));
  }
}

Window WindowSampler::train_window(int64_t start_index) const {
  return locate(split_.train, train_starts_, start_index);
}

Batch WindowSampler::train_batch(uint64_t step, uint64_t stream) const {
  Rng rng = Rng(derive_seed(options_.seed, "hnas.data.train_windows")).fork(step).fork(stream);
  std::vector<Window> windows;
  windows.reserve(static_cast<size_t>(options_.batch_size));
  for (int64_t b = 0; b < options_.batch_size; ++b) {
    const auto index = static_cast<int64_t>(rng.uniform_int(static_cast<uint64_t>(num_train_starts())));
    windows.push_back(train_window(index));
  }
  return gather(windows);
}

int64_t WindowSampler::num_val_batches() const {
  const auto n = static_cast<int64_t>(val_windows_.size());
  return (n + options_.batch_size - 1) / options_.batch_size;
}

Batch WindowSampler::val_batch(int64_t index) const {
  HNAS_CHECK(index >= 0 && index < num_val_batches(), ConfigError,
             "validation batch " << index << " out of range [0, " << num_val_batches() << ")");
  const auto first = static_cast<size_t>(index * options_.batch_size);
  const size_t last = std::min(val_windows_.size(), first + static_cast<size_t>(options_.batch_size));
  return gather(std::vector<Window>(val_windows_.begin() + static_cast<std::ptrdiff_t>(first),
                                    val_windows_.begin() + static_cast<std::ptrdiff_t>(last)));
}

Batch WindowSampler::gather(const std::vector<Window>& windows) const {
  const int64_t seq_len = options_.seq_len;
  Batch batch;
  batch.batch_size = static_cast<int64_t>(windows.size());
  batch.seq_len = seq_len;
  batch.inputs.resize(static_cast<size_t>(batch.batch_size * seq_len));
  batch.targets.resize(batch.inputs.size());
  batch.windows = windows;
  std::vector<int64_t> tokens(static_cast<size_t>(seq_len + 1));
  for (size_t b = 0; b < windows.size(); ++b) {
    dataset_.shard(windows[b].shard).read(windows[b].offset, seq_len + 1, tokens.data());
    std::copy(tokens.begin(), tokens.end() - 1, batch.inputs.begin() + static_cast<std::ptrdiff_t>(b * seq_len));
    std::copy(tokens.begin() + 1, tokens.end(), batch.targets.begin() + static_cast<std::ptrdiff_t>(b * seq_len));
  }
  return batch;
}

}  // namespace hnas::data
