// SPDX-License-Identifier: Apache-2.0
// MAD task registry, benchmark settings, validation, token layouts and the split driver.
// The per-task instance generators live in mad_recall.cpp, mad_copying.cpp and
// mad_memorization.cpp.
#include "hnas/data/mad.hpp"

#include <cmath>
#include <sstream>

#include "hnas/core/check.hpp"
#include "hnas/core/rng.hpp"
#include "mad_generators.hpp"

namespace hnas::data {
namespace {

// Bounds that keep every id in int32 and every buffer size far from int64 overflow; the
// benchmark uses at most V 8192, L 1024 and 14080 rows.
constexpr int64_t kMaxVocabSize = int64_t{1} << 30;
constexpr int64_t kMaxSeqLen = int64_t{1} << 24;
constexpr int64_t kMaxRows = int64_t{1} << 26;
constexpr int64_t kMaxTokensPerSplit = int64_t{1} << 31;
constexpr int64_t kMaxMotifSize = 16;

const std::vector<int64_t> kTrainSizeChanges = {6400, 3200, 1600, 800};

}  // namespace

const char* task_name(MadTask task) {
  switch (task) {
    case MadTask::InContextRecall:
      return "in-context-recall";
    case MadTask::FuzzyInContextRecall:
      return "fuzzy-in-context-recall";
    case MadTask::NoisyInContextRecall:
      return "noisy-in-context-recall";
    case MadTask::SelectiveCopying:
      return "selective-copying";
    case MadTask::Compression:
      return "compression";
    case MadTask::Memorization:
      return "memorization";
  }
  HNAS_ASSERT(false, "unknown MadTask " << static_cast<int>(task));
  return "";
}

MadTask parse_task(std::string_view name) {
  for (MadTask task : all_tasks()) {
    if (name == task_name(task)) return task;
  }
  std::string valid;
  for (MadTask task : all_tasks()) valid += (valid.empty() ? "" : ", ") + std::string(task_name(task));
  throw ConfigError("unknown MAD task '" + std::string(name) + "'; valid tasks: " + valid);
}

std::vector<MadTask> all_tasks() {
  return {MadTask::InContextRecall,  MadTask::FuzzyInContextRecall, MadTask::NoisyInContextRecall,
          MadTask::SelectiveCopying, MadTask::Compression,          MadTask::Memorization};
}

std::string MadSetting::label() const {
  std::ostringstream out;
  out << task_name(task) << " vs=" << vocab_size << " sl=" << seq_len << " nt=" << num_train;
  switch (task) {
    case MadTask::NoisyInContextRecall:
      out << " fn=" << frac_noise << " nvs=" << noise_vocab_size;
      break;
    case MadTask::FuzzyInContextRecall:
      out << " km=" << k_motif_size << " vm=" << v_motif_size;
      break;
    case MadTask::SelectiveCopying:
      out << " nc=" << num_tokens_to_copy;
      break;
    default:
      break;
  }
  const MadSetting defaults;
  if (num_test != defaults.num_test) out << " nte=" << num_test;
  if (seed != defaults.seed) out << " seed=" << seed;
  return out.str();
}

namespace {

// Streams the message prefix; the label is only built when a check fails.
struct Where {
  const MadSetting& setting;
};
std::ostream& operator<<(std::ostream& out, const Where& w) {
  return out << "MAD setting '" << w.setting.label() << "': ";
}

}  // namespace

void MadSetting::validate() const {
  const Where where{*this};
  HNAS_CHECK(vocab_size >= 2 && vocab_size <= kMaxVocabSize, ConfigError,
             where << "vocab_size must be in [2, " << kMaxVocabSize << "], got " << vocab_size);
  HNAS_CHECK(seq_len >= 2 && seq_len <= kMaxSeqLen, ConfigError,
             where << "seq_len must be in [2, " << kMaxSeqLen << "], got " << seq_len);
  HNAS_CHECK(num_train >= 1 && num_train <= kMaxRows, ConfigError,
             where << "num_train must be in [1, " << kMaxRows << "], got " << num_train);
  HNAS_CHECK(num_test >= 1 && num_test <= kMaxRows, ConfigError,
             where << "num_test must be in [1, " << kMaxRows << "], got " << num_test);
  HNAS_CHECK(num_train * seq_len <= kMaxTokensPerSplit && num_test * seq_len <= kMaxTokensPerSplit, ConfigError,
             where << "num_train or num_test times seq_len exceeds " << kMaxTokensPerSplit << " tokens");
  HNAS_CHECK(multi_query, ConfigError,
             where << "multi_query=false (single-query recall) is not implemented; MAD uses "
                      "multi-query recall only");

  // A field the generator would ignore must not differ from its default, otherwise two
  // settings with different fields (and labels) would silently give the same data.
  const MadSetting defaults;
  const bool noisy = task == MadTask::NoisyInContextRecall;
  HNAS_CHECK(noisy || frac_noise == defaults.frac_noise, ConfigError,
             where << "frac_noise is only used by noisy-in-context-recall, got " << frac_noise);
  HNAS_CHECK(noisy || noise_vocab_size == defaults.noise_vocab_size, ConfigError,
             where << "noise_vocab_size is only used by noisy-in-context-recall, got " << noise_vocab_size);
  HNAS_CHECK(task == MadTask::SelectiveCopying || num_tokens_to_copy == defaults.num_tokens_to_copy, ConfigError,
             where << "num_tokens_to_copy is only used by selective-copying, got " << num_tokens_to_copy);
  const bool fuzzy = task == MadTask::FuzzyInContextRecall;
  HNAS_CHECK(fuzzy || k_motif_size == defaults.k_motif_size, ConfigError,
             where << "k_motif_size is only used by fuzzy-in-context-recall, got " << k_motif_size);
  HNAS_CHECK(fuzzy || v_motif_size == defaults.v_motif_size, ConfigError,
             where << "v_motif_size is only used by fuzzy-in-context-recall, got " << v_motif_size);

  switch (task) {
    case MadTask::InContextRecall:
    case MadTask::NoisyInContextRecall: {
      HNAS_CHECK(seq_len % 2 == 0 && seq_len >= 4, ConfigError,
                 where << "seq_len must be even (key/value pairs) and at least 4, got " << seq_len);
      if (noisy) {
        // Below 1 as in the reference: at 1 only the protected slot could hold a key.
        HNAS_CHECK(std::isfinite(frac_noise) && frac_noise >= 0.0 && frac_noise < 1.0, ConfigError,
                   where << "frac_noise must be in [0, 1), got " << frac_noise);
        HNAS_CHECK(noise_vocab_size >= 1, ConfigError,
                   where << "noise_vocab_size must be at least 1 for the noisy task, got " << noise_vocab_size);
      }
      HNAS_CHECK(vocab_size - noise_vocab_size >= 2, ConfigError,
                 where << "vocab_size " << vocab_size << " minus noise_vocab_size " << noise_vocab_size
                       << " leaves fewer than 2 ids for keys and values");
      break;
    }
    case MadTask::FuzzyInContextRecall: {
      HNAS_CHECK(k_motif_size >= 1 && k_motif_size <= kMaxMotifSize, ConfigError,
                 where << "k_motif_size must be in [1, " << kMaxMotifSize << "], got " << k_motif_size);
      HNAS_CHECK(v_motif_size >= 1 && v_motif_size <= kMaxMotifSize, ConfigError,
                 where << "v_motif_size must be in [1, " << kMaxMotifSize << "], got " << v_motif_size);
      // Motifs use distinct ids, so each range must hold at least one full-size motif.
      const int64_t ids = vocab_size - 1;
      HNAS_CHECK(ids / 2 >= k_motif_size && ids - ids / 2 >= v_motif_size, ConfigError,
                 where << "vocab_size " << vocab_size << " gives " << ids / 2 << " key and " << ids - ids / 2
                       << " value ids, too few for k_motif_size " << k_motif_size << " and v_motif_size "
                       << v_motif_size);
      // The probe's insertion offset is drawn from [0, L - 2q) with q up to k + v.
      HNAS_CHECK(seq_len > 2 * (k_motif_size + v_motif_size), ConfigError,
                 where << "seq_len must exceed 2 * (k_motif_size + v_motif_size) = "
                       << 2 * (k_motif_size + v_motif_size) << ", got " << seq_len);
      break;
    }
    case MadTask::SelectiveCopying: {
      HNAS_CHECK(num_tokens_to_copy >= 1, ConfigError,
                 where << "num_tokens_to_copy must be at least 1, got " << num_tokens_to_copy);
      HNAS_CHECK(seq_len > 2 * num_tokens_to_copy + 1, ConfigError,
                 where << "seq_len must exceed 2 * num_tokens_to_copy + 1 = " << 2 * num_tokens_to_copy + 1 << ", got "
                       << seq_len);
      HNAS_CHECK(vocab_size >= 3, ConfigError,
                 where << "vocab_size must be at least 3 (data, blank, copy), got " << vocab_size);
      break;
    }
    case MadTask::Compression:
      break;  // V >= 2 and L >= 2 suffice: one data id plus the compression token
    case MadTask::Memorization: {
      HNAS_CHECK(seq_len % 2 == 0, ConfigError, where << "seq_len must be even (key/insert pairs), got " << seq_len);
      HNAS_CHECK(vocab_size >= 3, ConfigError,
                 where << "vocab_size must be at least 3 (key, value, insert), got " << vocab_size);
      break;
    }
  }
}

int64_t MadSetting::input_length() const {
  const bool shifted_pairs = task == MadTask::InContextRecall || task == MadTask::NoisyInContextRecall;
  return shifted_pairs ? seq_len - 1 : seq_len;
}

bool MadSetting::autoencoder() const { return task == MadTask::Compression; }

bool MadSetting::operator==(const MadSetting& o) const {
  return task == o.task && vocab_size == o.vocab_size && seq_len == o.seq_len && num_train == o.num_train &&
         num_test == o.num_test && frac_noise == o.frac_noise && noise_vocab_size == o.noise_vocab_size &&
         num_tokens_to_copy == o.num_tokens_to_copy && k_motif_size == o.k_motif_size &&
         v_motif_size == o.v_motif_size && multi_query == o.multi_query && seed == o.seed;
}

MadSetting baseline_setting(MadTask task) {
  MadSetting s;
  s.task = task;
  s.num_train = 12800;
  switch (task) {
    case MadTask::InContextRecall:
      s.vocab_size = 16;
      s.seq_len = 128;
      break;
    case MadTask::NoisyInContextRecall:
      s.vocab_size = 32;
      s.seq_len = 128;
      s.noise_vocab_size = 16;
      s.frac_noise = 0.2;
      break;
    case MadTask::FuzzyInContextRecall:
      s.vocab_size = 16;
      s.seq_len = 128;
      s.k_motif_size = 3;
      s.v_motif_size = 3;
      break;
    case MadTask::SelectiveCopying:
      s.vocab_size = 16;
      s.seq_len = 256;
      s.num_tokens_to_copy = 16;
      break;
    case MadTask::Compression:
      s.vocab_size = 16;
      s.seq_len = 32;
      break;
    case MadTask::Memorization:
      s.vocab_size = 256;
      s.seq_len = 32;
      s.num_train = 256;
      break;
  }
  return s;
}

std::vector<MadSetting> benchmark_settings(MadTask task) {
  const MadSetting base = baseline_setting(task);
  std::vector<MadSetting> out = {base};
  // Each change alters one field of the baseline; changes are never combined.
  auto add = [&](auto MadSetting::*field, const auto& values) {
    for (const auto& value : values) {
      MadSetting s = base;
      s.*field = value;
      out.push_back(s);
    }
  };
  using Sizes = std::vector<int64_t>;
  switch (task) {
    case MadTask::InContextRecall:
    case MadTask::FuzzyInContextRecall:
      add(&MadSetting::vocab_size, Sizes{32, 64, 128});
      add(&MadSetting::seq_len, Sizes{256, 512, 1024});
      add(&MadSetting::num_train, kTrainSizeChanges);
      break;
    case MadTask::NoisyInContextRecall:
      // The noise vocabulary stays 16, so these give 32/64/128 key and value ids.
      add(&MadSetting::vocab_size, Sizes{48, 80, 144});
      add(&MadSetting::seq_len, Sizes{256, 512, 1024});
      add(&MadSetting::num_train, kTrainSizeChanges);
      add(&MadSetting::frac_noise, std::vector<double>{0.4, 0.6, 0.8});
      break;
    case MadTask::SelectiveCopying:
      add(&MadSetting::vocab_size, Sizes{32, 64, 128});
      add(&MadSetting::seq_len, Sizes{512, 1024});
      add(&MadSetting::num_train, kTrainSizeChanges);
      add(&MadSetting::num_tokens_to_copy, Sizes{32, 64, 96});
      break;
    case MadTask::Compression:
      add(&MadSetting::vocab_size, Sizes{32, 64, 128});
      add(&MadSetting::seq_len, Sizes{64, 128, 256});
      add(&MadSetting::num_train, kTrainSizeChanges);
      break;
    case MadTask::Memorization:
      add(&MadSetting::vocab_size, Sizes{512, 1024, 2048, 4096, 8192});
      break;
  }
  return out;
}

MadLayout mad_layout(const MadSetting& setting) {
  setting.validate();
  const auto v = static_cast<int32_t>(setting.vocab_size);
  MadLayout layout;
  auto split_keys_values = [&layout](int32_t num_ids) {
    layout.key_begin = 0;
    layout.key_end = num_ids / 2;
    layout.value_begin = num_ids / 2;
    layout.value_end = num_ids;
  };
  switch (setting.task) {
    case MadTask::InContextRecall:
    case MadTask::NoisyInContextRecall: {
      const auto p = static_cast<int32_t>(setting.vocab_size - setting.noise_vocab_size);
      split_keys_values(p);
      layout.noise_begin = p;
      layout.noise_end = v;
      break;
    }
    case MadTask::FuzzyInContextRecall:
      split_keys_values(v - 1);
      layout.pad = v - 1;
      break;
    case MadTask::SelectiveCopying:
      layout.data_end = v - 2;
      layout.blank = v - 2;
      layout.copy = v - 1;
      break;
    case MadTask::Compression:
      layout.data_end = v - 1;
      layout.compression = v - 1;
      break;
    case MadTask::Memorization:
      split_keys_values(v - 1);
      layout.insert = v - 1;
      break;
  }
  return layout;
}

namespace {

MadSplit draw_split(const MadSetting& setting, const MadLayout& layout, const std::vector<int32_t>& memorization,
                    Rng& rng, int64_t num_rows, bool is_training) {
  MadSplit split;
  split.num_rows = num_rows;
  split.row_length = setting.input_length();
  const auto total = static_cast<size_t>(num_rows * split.row_length);
  split.inputs.reserve(total);
  split.targets.reserve(total);
  for (int64_t i = 0; i < num_rows; ++i) {
    MadRow row;
    switch (setting.task) {
      case MadTask::InContextRecall:
      case MadTask::NoisyInContextRecall:
        row = detail::draw_recall(setting, layout, rng, is_training);
        break;
      case MadTask::FuzzyInContextRecall:
        row = detail::draw_fuzzy_recall(setting, layout, rng, is_training);
        break;
      case MadTask::SelectiveCopying:
        row = detail::draw_selective_copying(setting, layout, rng);
        break;
      case MadTask::Compression:
        row = detail::draw_compression(setting, layout, rng);
        break;
      case MadTask::Memorization:
        row = detail::draw_memorization(setting, layout, memorization, rng);
        break;
    }
    HNAS_ASSERT(static_cast<int64_t>(row.inputs.size()) == split.row_length && row.targets.size() == row.inputs.size(),
                setting.label() << ": generated row of length " << row.inputs.size());
    split.inputs.insert(split.inputs.end(), row.inputs.begin(), row.inputs.end());
    split.targets.insert(split.targets.end(), row.targets.begin(), row.targets.end());
  }
  return split;
}

}  // namespace

MadData generate(const MadSetting& setting) {
  const MadLayout layout = mad_layout(setting);  // validates
  const std::vector<int32_t> memorization =
      setting.task == MadTask::Memorization ? memorization_map(setting) : std::vector<int32_t>{};
  // One stream for both splits: the test set continues the training stream (mad-spec §1.2).
  Rng rng(setting.seed);
  MadData data;
  data.train = draw_split(setting, layout, memorization, rng, setting.num_train,
                          /*is_training=*/true);
  data.test = draw_split(setting, layout, memorization, rng, setting.num_test,
                         /*is_training=*/false);
  return data;
}

}  // namespace hnas::data
