// SPDX-License-Identifier: Apache-2.0
// The six MAD synthetic tasks (mad-lab, Poli et al. 2024): their benchmark settings and
// deterministic generators of train and test rows. Token layouts follow
// shared/design/mad-spec.md §4; the randomness comes from hnas::Rng, so the data are the
// same on every platform (they match the reference in distribution, not bit for bit).
// Pure functions of a setting: callable from any rank; every rank gets the same data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hnas::data {

/// Target id that the loss and the accuracy skip (torch's CrossEntropyLoss default).
constexpr int32_t kIgnoreIndex = -100;

enum class MadTask {
  InContextRecall,
  FuzzyInContextRecall,
  NoisyInContextRecall,
  SelectiveCopying,
  Compression,
  Memorization,
};

/// The mad-lab registry name: "in-context-recall", "fuzzy-in-context-recall",
/// "noisy-in-context-recall", "selective-copying", "compression", "memorization".
const char* task_name(MadTask task);

/// Inverse of task_name; throws ConfigError listing the valid names for anything else.
MadTask parse_task(std::string_view name);

/// The six tasks in the order of the enum.
std::vector<MadTask> all_tasks();

/// One task setting. Fields a task does not use must keep their defaults (validate()
/// rejects anything else), so two settings with the same label() give the same data.
struct MadSetting {
  MadTask task = MadTask::InContextRecall;
  int64_t vocab_size = 0;  ///< V: the model's vocabulary, special and noise ids included
  int64_t seq_len = 0;     ///< L
  int64_t num_train = 0;
  int64_t num_test = 1280;
  double frac_noise = 0.0;         ///< noisy recall: probability in [0, 1) that a slot is noise
  int64_t noise_vocab_size = 0;    ///< noisy recall: N ids at the top of the vocabulary
  int64_t num_tokens_to_copy = 0;  ///< selective copying: n
  int64_t k_motif_size = 1;        ///< fuzzy recall: longest key motif
  int64_t v_motif_size = 1;        ///< fuzzy recall: longest value motif
  bool multi_query = true;         ///< only multi-query recall is implemented
  uint64_t seed = 12345;

  /// Short unique description, e.g. "in-context-recall vs=16 sl=128 nt=12800"; task
  /// fields (fn, nvs, km, vm, nc) and a non-default test size or seed are appended.
  std::string label() const;

  /// Throws ConfigError naming the offending field: sizes out of range, odd seq_len for
  /// the pair-based tasks, L <= 2n+1 for copying, a vocabulary too small for the layout,
  /// or a field the task does not use that was changed from its default.
  void validate() const;

  /// Length of one input (and target) row: L-1 for ICR and noisy ICR, L otherwise.
  int64_t input_length() const;

  /// True for compression, which trains the AutoEncoder backbone instead of the LM.
  bool autoencoder() const;

  bool operator==(const MadSetting& other) const;
  bool operator!=(const MadSetting& other) const { return !(*this == other); }
};

/// The task's baseline setting (mad-spec §1.1).
MadSetting baseline_setting(MadTask task);

/// The baseline first, then every one-variable change of the benchmark, in the order
/// vocab_size, seq_len, num_train, task-specific (frac_noise or num_tokens_to_copy).
/// Sizes 11, 14, 11, 13, 11, 6 in enum order: 66 settings.
std::vector<MadSetting> benchmark_settings(MadTask task);

/// Rows of one split, row-major num_rows x row_length. Targets equal to kIgnoreIndex
/// are not scored.
struct MadSplit {
  int64_t num_rows = 0;
  int64_t row_length = 0;
  std::vector<int32_t> inputs;
  std::vector<int32_t> targets;
};

struct MadData {
  MadSplit train;
  MadSplit test;
};

/// Validates the setting, then draws num_train training rows followed by num_test test
/// rows from one Rng seeded with setting.seed: the test set continues the training
/// stream, as in mad-lab. Recall training rows are the plain shifted sequence. In-context
/// and noisy recall test rows score only answerable queries; fuzzy recall test rows score
/// the values of every repeated key and of the final probe motif, which may be
/// unanswerable (its key never appeared before), as the reference does. The other tasks
/// have one row form for both splits.
MadData generate(const MadSetting& setting);

// ---- Building blocks, exposed for tests and tools -------------------------------------

/// Sentinel for a role the task does not have.
constexpr int32_t kNoToken = -1;

/// Token roles of a setting; ranges are [begin, end), absent roles are empty / kNoToken.
struct MadLayout {
  int32_t key_begin = 0, key_end = 0;      ///< recall and memorization keys
  int32_t value_begin = 0, value_end = 0;  ///< recall and memorization values
  int32_t noise_begin = 0, noise_end = 0;  ///< noisy recall
  int32_t data_begin = 0, data_end = 0;    ///< selective copying and compression data
  int32_t pad = kNoToken;                  ///< fuzzy recall left padding
  int32_t blank = kNoToken;                ///< selective copying
  int32_t copy = kNoToken;                 ///< selective copying
  int32_t insert = kNoToken;               ///< memorization
  int32_t compression = kNoToken;          ///< compression
};

/// The layout of a valid setting (mad-spec §4).
MadLayout mad_layout(const MadSetting& setting);

/// One instance: input and target rows of equal length.
struct MadRow {
  std::vector<int32_t> inputs;
  std::vector<int32_t> targets;
};

/// Turns a full recall sequence S into a row. For ICR and noisy ICR S has L tokens (key,
/// value) or (noise, noise) pairs, the last pair being the probe; for fuzzy recall S has
/// L+1 tokens, left pads then key motif / value motif pairs, the last pair being the probe.
/// Training: (S[0:-1], S[1:]). Test: (S[0:-1], T[1:]) where T holds a pair's values if
/// its key occurred earlier in S, the final probe's values always, and IGN elsewhere.
/// Throws ConfigError if S does not fit the setting's layout.
MadRow recall_row(const MadSetting& setting, const std::vector<int32_t>& sequence, bool is_training);

/// Selective-copying row from the n data tokens and the number of blanks placed before
/// each of them (their sum must be L-2n-1): blanks and data, the copy token, n blanks;
/// targets IGN except the data tokens in order over the last n positions.
MadRow selective_copying_row(const MadSetting& setting, const std::vector<int32_t>& data_tokens,
                             const std::vector<int64_t>& blanks_before);

/// The memorization key -> value map of a setting (value of key k at index k): built once
/// from the seed by shuffling keys and values and pairing them, so it is injective and the
/// same for train, test and every call with the same setting.
std::vector<int32_t> memorization_map(const MadSetting& setting);

/// Memorization row from L/2 keys: (key, insert) inputs, (IGN, map[key]) targets.
MadRow memorization_row(const MadSetting& setting, const std::vector<int32_t>& map, const std::vector<int32_t>& keys);

}  // namespace hnas::data
