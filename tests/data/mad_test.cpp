// SPDX-License-Identifier: Apache-2.0
// MAD generators against shared/design/mad-spec.md: registry and settings, the worked
// examples of §4, and per-task invariants checked on generated rows. Expected token ranges
// are written from the spec's formulas, not read back from mad_layout().
#include "hnas/data/mad.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "hnas/core/error.hpp"

namespace hnas::data {
// Readable parameter values in GoogleTest output.
void PrintTo(MadTask task, std::ostream* out) { *out << task_name(task); }
}  // namespace hnas::data

namespace {

using namespace hnas::data;  // NOLINT: test file only

constexpr int32_t IGN = kIgnoreIndex;

// ---- helpers ---------------------------------------------------------------------------

// The baseline with fewer rows, for tests that only need structure.
MadSetting baseline_with_rows(MadTask task, int64_t num_train = 300, int64_t num_test = 200) {
  MadSetting s = baseline_setting(task);
  s.num_train = num_train;
  s.num_test = num_test;
  return s;
}

std::vector<int32_t> row_of(const std::vector<int32_t>& flat, const MadSplit& split, int64_t r) {
  const auto begin = flat.begin() + r * split.row_length;
  return {begin, begin + split.row_length};
}
std::vector<int32_t> input_row(const MadSplit& split, int64_t r) { return row_of(split.inputs, split, r); }
std::vector<int32_t> target_row(const MadSplit& split, int64_t r) { return row_of(split.targets, split, r); }

// Rows [first, first + count) of a split's inputs and targets, flattened.
std::vector<int32_t> rows_slice(const std::vector<int32_t>& flat, const MadSplit& split, int64_t first, int64_t count) {
  const auto begin = flat.begin() + first * split.row_length;
  return {begin, begin + count * split.row_length};
}

bool in(int32_t token, int32_t begin, int32_t end) { return token >= begin && token < end; }

// Number of fields in which two settings differ.
int count_differences(const MadSetting& a, const MadSetting& b) {
  return (a.task != b.task) + (a.vocab_size != b.vocab_size) + (a.seq_len != b.seq_len) + (a.num_train != b.num_train) +
         (a.num_test != b.num_test) + (a.frac_noise != b.frac_noise) + (a.noise_vocab_size != b.noise_vocab_size) +
         (a.num_tokens_to_copy != b.num_tokens_to_copy) + (a.k_motif_size != b.k_motif_size) +
         (a.v_motif_size != b.v_motif_size) + (a.multi_query != b.multi_query) + (a.seed != b.seed);
}

// ---- registry and settings ---------------------------------------------------------------

TEST(MadRegistry, names_round_trip_through_parse_task) {
  const std::vector<std::string> expected = {
      "in-context-recall", "fuzzy-in-context-recall", "noisy-in-context-recall", "selective-copying", "compression",
      "memorization"};
  const std::vector<MadTask> tasks = all_tasks();
  ASSERT_EQ(tasks.size(), expected.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    EXPECT_EQ(task_name(tasks[i]), expected[i]);
    EXPECT_EQ(parse_task(expected[i]), tasks[i]);
  }
}

TEST(MadRegistry, unknown_name_is_rejected_with_the_valid_names) {
  try {
    parse_task("icr");
    ADD_FAILURE() << "accepted 'icr'";
  } catch (const hnas::ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("'icr'"), std::string::npos) << message;
    for (MadTask task : all_tasks()) {
      EXPECT_NE(message.find(task_name(task)), std::string::npos) << message;
    }
  }
  EXPECT_THROW(parse_task("In-Context-Recall"), hnas::ConfigError);
  EXPECT_THROW(parse_task(""), hnas::ConfigError);
}

TEST(MadSettings, baselines_match_the_spec_table) {
  const MadSetting icr = baseline_setting(MadTask::InContextRecall);
  EXPECT_EQ(icr.vocab_size, 16);
  EXPECT_EQ(icr.seq_len, 128);
  EXPECT_EQ(icr.num_train, 12800);
  EXPECT_EQ(icr.num_test, 1280);
  EXPECT_EQ(icr.seed, 12345u);
  EXPECT_TRUE(icr.multi_query);

  const MadSetting noisy = baseline_setting(MadTask::NoisyInContextRecall);
  EXPECT_EQ(noisy.vocab_size, 32);
  EXPECT_EQ(noisy.noise_vocab_size, 16);
  EXPECT_DOUBLE_EQ(noisy.frac_noise, 0.2);
  EXPECT_EQ(noisy.seq_len, 128);

  const MadSetting fuzzy = baseline_setting(MadTask::FuzzyInContextRecall);
  EXPECT_EQ(fuzzy.vocab_size, 16);
  EXPECT_EQ(fuzzy.k_motif_size, 3);
  EXPECT_EQ(fuzzy.v_motif_size, 3);

  const MadSetting copying = baseline_setting(MadTask::SelectiveCopying);
  EXPECT_EQ(copying.vocab_size, 16);
  EXPECT_EQ(copying.seq_len, 256);
  EXPECT_EQ(copying.num_tokens_to_copy, 16);

  const MadSetting compression = baseline_setting(MadTask::Compression);
  EXPECT_EQ(compression.vocab_size, 16);
  EXPECT_EQ(compression.seq_len, 32);
  EXPECT_EQ(compression.num_train, 12800);

  const MadSetting memorization = baseline_setting(MadTask::Memorization);
  EXPECT_EQ(memorization.vocab_size, 256);
  EXPECT_EQ(memorization.seq_len, 32);
  EXPECT_EQ(memorization.num_train, 256);
  EXPECT_EQ(memorization.num_test, 1280);
}

TEST(MadSettings, benchmark_has_66_settings_in_the_spec_sizes) {
  const std::map<MadTask, size_t> expected = {{MadTask::InContextRecall, 11},      {MadTask::NoisyInContextRecall, 14},
                                              {MadTask::FuzzyInContextRecall, 11}, {MadTask::SelectiveCopying, 13},
                                              {MadTask::Compression, 11},          {MadTask::Memorization, 6}};
  size_t total = 0;
  for (MadTask task : all_tasks()) {
    const auto settings = benchmark_settings(task);
    EXPECT_EQ(settings.size(), expected.at(task)) << task_name(task);
    total += settings.size();
  }
  EXPECT_EQ(total, 66u);
}

TEST(MadSettings, each_change_alters_one_field_of_the_baseline_to_a_spec_value) {
  // field name -> changed values, per task, from mad-spec §1.1.
  using Changes = std::map<std::string, std::set<double>>;
  const std::set<double> train_sizes = {6400, 3200, 1600, 800};
  const std::map<MadTask, Changes> expected = {
      {MadTask::InContextRecall,
       {{"vocab_size", {32, 64, 128}}, {"seq_len", {256, 512, 1024}}, {"num_train", train_sizes}}},
      {MadTask::NoisyInContextRecall,
       {{"vocab_size", {48, 80, 144}},
        {"seq_len", {256, 512, 1024}},
        {"num_train", train_sizes},
        {"frac_noise", {0.4, 0.6, 0.8}}}},
      {MadTask::FuzzyInContextRecall,
       {{"vocab_size", {32, 64, 128}}, {"seq_len", {256, 512, 1024}}, {"num_train", train_sizes}}},
      {MadTask::SelectiveCopying,
       {{"vocab_size", {32, 64, 128}},
        {"seq_len", {512, 1024}},
        {"num_train", train_sizes},
        {"num_tokens_to_copy", {32, 64, 96}}}},
      {MadTask::Compression, {{"vocab_size", {32, 64, 128}}, {"seq_len", {64, 128, 256}}, {"num_train", train_sizes}}},
      {MadTask::Memorization, {{"vocab_size", {512, 1024, 2048, 4096, 8192}}}}};

  for (MadTask task : all_tasks()) {
    const auto settings = benchmark_settings(task);
    const MadSetting base = baseline_setting(task);
    ASSERT_FALSE(settings.empty());
    EXPECT_EQ(settings.front(), base) << task_name(task);
    Changes seen;
    for (size_t i = 1; i < settings.size(); ++i) {
      const MadSetting& s = settings[i];
      EXPECT_EQ(count_differences(s, base), 1) << s.label();
      if (s.vocab_size != base.vocab_size) seen["vocab_size"].insert(double(s.vocab_size));
      if (s.seq_len != base.seq_len) seen["seq_len"].insert(double(s.seq_len));
      if (s.num_train != base.num_train) seen["num_train"].insert(double(s.num_train));
      if (s.frac_noise != base.frac_noise) seen["frac_noise"].insert(s.frac_noise);
      if (s.num_tokens_to_copy != base.num_tokens_to_copy) {
        seen["num_tokens_to_copy"].insert(double(s.num_tokens_to_copy));
      }
    }
    EXPECT_EQ(seen, expected.at(task)) << task_name(task);
  }
}

TEST(MadSettings, every_benchmark_setting_validates_and_labels_are_unique) {
  std::set<std::string> labels;
  for (MadTask task : all_tasks()) {
    for (const MadSetting& s : benchmark_settings(task)) {
      EXPECT_NO_THROW(s.validate()) << s.label();
      EXPECT_TRUE(labels.insert(s.label()).second) << "duplicate label " << s.label();
    }
  }
  EXPECT_EQ(labels.size(), 66u);
}

TEST(MadSettings, labels_name_task_and_changed_fields) {
  EXPECT_EQ(baseline_setting(MadTask::InContextRecall).label(), "in-context-recall vs=16 sl=128 nt=12800");
  EXPECT_EQ(baseline_setting(MadTask::NoisyInContextRecall).label(),
            "noisy-in-context-recall vs=32 sl=128 nt=12800 fn=0.2 nvs=16");
  EXPECT_EQ(baseline_setting(MadTask::FuzzyInContextRecall).label(),
            "fuzzy-in-context-recall vs=16 sl=128 nt=12800 km=3 vm=3");
  EXPECT_EQ(baseline_setting(MadTask::SelectiveCopying).label(), "selective-copying vs=16 sl=256 nt=12800 nc=16");
  MadSetting s = baseline_setting(MadTask::Memorization);
  s.num_test = 64;
  s.seed = 7;
  EXPECT_EQ(s.label(), "memorization vs=256 sl=32 nt=256 nte=64 seed=7");
}

TEST(MadSettings, input_length_and_backbone_follow_the_task) {
  EXPECT_EQ(baseline_setting(MadTask::InContextRecall).input_length(), 127);
  EXPECT_EQ(baseline_setting(MadTask::NoisyInContextRecall).input_length(), 127);
  EXPECT_EQ(baseline_setting(MadTask::FuzzyInContextRecall).input_length(), 128);
  EXPECT_EQ(baseline_setting(MadTask::SelectiveCopying).input_length(), 256);
  EXPECT_EQ(baseline_setting(MadTask::Compression).input_length(), 32);
  EXPECT_EQ(baseline_setting(MadTask::Memorization).input_length(), 32);
  for (MadTask task : all_tasks()) {
    EXPECT_EQ(baseline_setting(task).autoencoder(), task == MadTask::Compression) << task_name(task);
  }
}

// Applies `change` to the task's baseline and expects ConfigError mentioning `field`.
template <typename Change>
void expect_rejected(MadTask task, Change change, const std::string& field) {
  MadSetting s = baseline_setting(task);
  change(s);
  try {
    s.validate();
    ADD_FAILURE() << "accepted " << s.label() << " (expected a complaint about " << field << ")";
  } catch (const hnas::ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(field), std::string::npos) << field << ": " << message;
  }
  EXPECT_THROW(generate(s), hnas::ConfigError) << field;
}

TEST(MadSettings, validate_rejects_bad_settings_naming_the_field) {
  using T = MadTask;
  expect_rejected(
      T::InContextRecall, [](MadSetting& s) { s.seq_len = 127; }, "seq_len");
  expect_rejected(
      T::InContextRecall, [](MadSetting& s) { s.seq_len = 2; }, "seq_len");
  expect_rejected(
      T::InContextRecall, [](MadSetting& s) { s.vocab_size = 1; }, "vocab_size");
  expect_rejected(
      T::InContextRecall, [](MadSetting& s) { s.num_train = 0; }, "num_train");
  expect_rejected(
      T::InContextRecall, [](MadSetting& s) { s.num_test = -5; }, "num_test");
  expect_rejected(
      T::InContextRecall, [](MadSetting& s) { s.multi_query = false; }, "multi_query");
  expect_rejected(
      T::InContextRecall, [](MadSetting& s) { s.frac_noise = 0.2; }, "frac_noise");
  expect_rejected(
      T::InContextRecall, [](MadSetting& s) { s.k_motif_size = 3; }, "k_motif_size");
  expect_rejected(
      T::InContextRecall, [](MadSetting& s) { s.num_tokens_to_copy = 4; }, "num_tokens_to_copy");
  expect_rejected(
      T::NoisyInContextRecall, [](MadSetting& s) { s.frac_noise = 1.5; }, "frac_noise");
  expect_rejected(
      T::NoisyInContextRecall, [](MadSetting& s) { s.frac_noise = -0.1; }, "frac_noise");
  expect_rejected(
      T::NoisyInContextRecall, [](MadSetting& s) { s.frac_noise = 1.0; }, "frac_noise");
  expect_rejected(
      T::NoisyInContextRecall, [](MadSetting& s) { s.noise_vocab_size = 0; }, "noise_vocab_size");
  expect_rejected(
      T::NoisyInContextRecall, [](MadSetting& s) { s.noise_vocab_size = 31; }, "noise_vocab_size");
  expect_rejected(
      T::FuzzyInContextRecall, [](MadSetting& s) { s.vocab_size = 6; }, "vocab_size");
  expect_rejected(
      T::FuzzyInContextRecall, [](MadSetting& s) { s.seq_len = 12; }, "seq_len");
  expect_rejected(
      T::FuzzyInContextRecall, [](MadSetting& s) { s.v_motif_size = 0; }, "v_motif_size");
  expect_rejected(
      T::FuzzyInContextRecall, [](MadSetting& s) { s.noise_vocab_size = 2; }, "noise_vocab_size");
  expect_rejected(
      T::SelectiveCopying, [](MadSetting& s) { s.seq_len = 33; }, "seq_len");
  expect_rejected(
      T::SelectiveCopying, [](MadSetting& s) { s.num_tokens_to_copy = 0; }, "num_tokens_to_copy");
  expect_rejected(
      T::SelectiveCopying, [](MadSetting& s) { s.vocab_size = 2; }, "vocab_size");
  expect_rejected(
      T::Compression, [](MadSetting& s) { s.seq_len = 1; }, "seq_len");
  expect_rejected(
      T::Memorization, [](MadSetting& s) { s.seq_len = 31; }, "seq_len");
  expect_rejected(
      T::Memorization, [](MadSetting& s) { s.vocab_size = 2; }, "vocab_size");

  // The smallest legal layouts are accepted.
  MadSetting copying = baseline_setting(T::SelectiveCopying);
  copying.seq_len = 2 * copying.num_tokens_to_copy + 2;
  EXPECT_NO_THROW(copying.validate());
  MadSetting fuzzy = baseline_setting(T::FuzzyInContextRecall);
  fuzzy.seq_len = 13;
  fuzzy.vocab_size = 7;  // 3 key ids, 3 value ids, pad
  EXPECT_NO_THROW(fuzzy.validate());
}

// ---- layouts -----------------------------------------------------------------------------

TEST(MadLayout, special_ids_and_ranges_match_the_spec) {
  const MadLayout icr = mad_layout(baseline_setting(MadTask::InContextRecall));
  EXPECT_EQ(icr.key_begin, 0);
  EXPECT_EQ(icr.key_end, 8);
  EXPECT_EQ(icr.value_begin, 8);
  EXPECT_EQ(icr.value_end, 16);
  EXPECT_EQ(icr.noise_begin, icr.noise_end);

  MadSetting noisy_setting = baseline_setting(MadTask::NoisyInContextRecall);
  noisy_setting.vocab_size = 48;
  const MadLayout noisy = mad_layout(noisy_setting);
  EXPECT_EQ(noisy.key_end, 16);
  EXPECT_EQ(noisy.value_begin, 16);
  EXPECT_EQ(noisy.value_end, 32);
  EXPECT_EQ(noisy.noise_begin, 32);
  EXPECT_EQ(noisy.noise_end, 48);

  const MadLayout fuzzy = mad_layout(baseline_setting(MadTask::FuzzyInContextRecall));
  EXPECT_EQ(fuzzy.key_end, 7);
  EXPECT_EQ(fuzzy.value_begin, 7);
  EXPECT_EQ(fuzzy.value_end, 15);
  EXPECT_EQ(fuzzy.pad, 15);

  const MadLayout copying = mad_layout(baseline_setting(MadTask::SelectiveCopying));
  EXPECT_EQ(copying.data_end, 14);
  EXPECT_EQ(copying.blank, 14);
  EXPECT_EQ(copying.copy, 15);

  const MadLayout compression = mad_layout(baseline_setting(MadTask::Compression));
  EXPECT_EQ(compression.data_end, 15);
  EXPECT_EQ(compression.compression, 15);

  const MadLayout memorization = mad_layout(baseline_setting(MadTask::Memorization));
  EXPECT_EQ(memorization.key_end, 127);
  EXPECT_EQ(memorization.value_begin, 127);
  EXPECT_EQ(memorization.value_end, 255);
  EXPECT_EQ(memorization.insert, 255);
}

// ---- determinism and shapes, every task ----------------------------------------------------

class MadEveryTask : public ::testing::TestWithParam<MadTask> {};

TEST_P(MadEveryTask, shapes_follow_the_setting) {
  const MadSetting s = baseline_with_rows(GetParam(), 40, 30);
  const MadData data = generate(s);
  for (const MadSplit* split : {&data.train, &data.test}) {
    EXPECT_EQ(split->row_length, s.input_length());
    EXPECT_EQ(split->inputs.size(), size_t(split->num_rows * split->row_length));
    EXPECT_EQ(split->targets.size(), split->inputs.size());
    for (int32_t token : split->inputs) ASSERT_TRUE(in(token, 0, int32_t(s.vocab_size))) << token;
    for (int32_t token : split->targets) {
      ASSERT_TRUE(token == IGN || in(token, 0, int32_t(s.vocab_size))) << token;
    }
  }
  EXPECT_EQ(data.train.num_rows, 40);
  EXPECT_EQ(data.test.num_rows, 30);
}

TEST_P(MadEveryTask, same_seed_gives_identical_data_and_other_seeds_differ) {
  const MadSetting s = baseline_with_rows(GetParam(), 50, 20);
  const MadData a = generate(s);
  const MadData b = generate(s);
  EXPECT_EQ(a.train.inputs, b.train.inputs);
  EXPECT_EQ(a.train.targets, b.train.targets);
  EXPECT_EQ(a.test.inputs, b.test.inputs);
  EXPECT_EQ(a.test.targets, b.test.targets);

  MadSetting other = s;
  other.seed = s.seed + 1;
  const MadData c = generate(other);
  EXPECT_NE(a.train.inputs, c.train.inputs);
  EXPECT_NE(a.test.inputs, c.test.inputs);
}

TEST_P(MadEveryTask, training_rows_of_a_smaller_setting_are_a_prefix) {
  MadSetting big = baseline_with_rows(GetParam(), 60, 10);
  MadSetting little = baseline_with_rows(GetParam(), 25, 10);
  const MadData a = generate(big);
  const MadData b = generate(little);
  EXPECT_EQ(rows_slice(a.train.inputs, a.train, 0, 25), b.train.inputs);
  EXPECT_EQ(rows_slice(a.train.targets, a.train, 0, 25), b.train.targets);
  // The test rows continue the stream, so they move with the training-set size.
  EXPECT_NE(a.test.inputs, b.test.inputs);
}

INSTANTIATE_TEST_SUITE_P(Mad, MadEveryTask, ::testing::ValuesIn(all_tasks()),
                         [](const ::testing::TestParamInfo<MadTask>& info) {
                           std::string name = task_name(info.param);
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// For the tasks with one row form, the test set is literally the training stream continued.
TEST(MadStream, test_set_continues_the_training_stream) {
  for (MadTask task : {MadTask::SelectiveCopying, MadTask::Compression, MadTask::Memorization}) {
    const MadData joint = generate(baseline_with_rows(task, 70, 5));
    const MadData split = generate(baseline_with_rows(task, 50, 20));
    EXPECT_EQ(split.test.inputs, rows_slice(joint.train.inputs, joint.train, 50, 20)) << task_name(task);
    EXPECT_EQ(split.test.targets, rows_slice(joint.train.targets, joint.train, 50, 20)) << task_name(task);
  }
}

// ---- in-context recall and noisy recall -------------------------------------------------

MadSetting toy(MadTask task, int64_t vocab_size, int64_t seq_len) {
  MadSetting s = baseline_setting(task);
  s.vocab_size = vocab_size;
  s.seq_len = seq_len;
  return s;
}

TEST(MadRecall, reproduces_the_icr_worked_example) {
  const MadSetting s = toy(MadTask::InContextRecall, 16, 12);
  const std::vector<int32_t> sequence = {4, 14, 7, 8, 1, 14, 7, 8, 1, 14, 4, 14};
  const MadRow train = recall_row(s, sequence, /*is_training=*/true);
  const MadRow test = recall_row(s, sequence, /*is_training=*/false);
  const std::vector<int32_t> input = {4, 14, 7, 8, 1, 14, 7, 8, 1, 14, 4};
  EXPECT_EQ(train.inputs, input);
  EXPECT_EQ(test.inputs, input);
  EXPECT_EQ(train.targets, (std::vector<int32_t>{14, 7, 8, 1, 14, 7, 8, 1, 14, 4, 14}));
  EXPECT_EQ(test.targets, (std::vector<int32_t>{IGN, IGN, IGN, IGN, IGN, IGN, 8, IGN, 14, IGN, 14}));
}

TEST(MadRecall, reproduces_the_noisy_worked_example) {
  MadSetting s = toy(MadTask::NoisyInContextRecall, 16, 12);
  s.noise_vocab_size = 8;
  s.frac_noise = 0.4;
  const std::vector<int32_t> sequence = {13, 10, 8, 9, 3, 6, 2, 6, 2, 6, 3, 6};
  const MadRow train = recall_row(s, sequence, true);
  const MadRow test = recall_row(s, sequence, false);
  EXPECT_EQ(train.inputs, (std::vector<int32_t>{13, 10, 8, 9, 3, 6, 2, 6, 2, 6, 3}));
  EXPECT_EQ(train.targets, (std::vector<int32_t>{10, 8, 9, 3, 6, 2, 6, 2, 6, 3, 6}));
  EXPECT_EQ(test.targets, (std::vector<int32_t>{IGN, IGN, IGN, IGN, IGN, IGN, IGN, IGN, 6, IGN, 6}));
  // A probe slot made of noise, or a mixed slot, does not fit the layout.
  EXPECT_THROW(recall_row(s, {13, 10, 8, 9, 3, 6, 2, 6, 2, 6, 9, 9}, false), hnas::ConfigError);
  EXPECT_THROW(recall_row(s, {13, 1, 8, 9, 3, 6, 2, 6, 2, 6, 3, 6}, false), hnas::ConfigError);
  EXPECT_THROW(recall_row(s, {3, 6}, false), hnas::ConfigError);
}

struct PairRecallStats {
  int64_t rows = 0;
  int64_t scored = 0;
  int64_t noise_tokens = 0;
  int64_t tokens = 0;
};

// Checks one ICR/noisy test row: roles by position, and each scored target is the value
// paired with the same key earlier in the row; a position is scored exactly when its key
// occurred before, or it is the final probe.
::testing::AssertionResult check_pair_recall_test_row(const std::vector<int32_t>& input,
                                                      const std::vector<int32_t>& target, int32_t num_kv_ids,
                                                      int32_t vocab_size, PairRecallStats& stats) {
  const int32_t half = num_kv_ids / 2;
  std::map<int32_t, int32_t> value_of;
  const size_t n = input.size();
  for (size_t t = 0; t < n; t += 2) {
    const int32_t first = input[t];
    const bool last = t + 1 == n;
    if (in(first, num_kv_ids, vocab_size)) {  // noise slot
      if (last || !in(input[t + 1], num_kv_ids, vocab_size)) {
        return ::testing::AssertionFailure() << "noise slot at " << t << " is not a noise pair";
      }
      if (target[t] != IGN || target[t + 1] != IGN) {
        return ::testing::AssertionFailure() << "noise scored at " << t;
      }
      stats.noise_tokens += 2;
      continue;
    }
    if (!in(first, 0, half)) return ::testing::AssertionFailure() << "no key at " << t;
    if (!last && !in(input[t + 1], half, num_kv_ids)) {
      return ::testing::AssertionFailure() << "no value at " << t + 1;
    }
    if (!last && target[t + 1] != IGN) {
      return ::testing::AssertionFailure() << "value position " << t + 1 << " scored";
    }
    const auto earlier = value_of.find(first);
    if (earlier != value_of.end()) {
      if (target[t] != earlier->second) {
        return ::testing::AssertionFailure() << "target " << target[t] << " at " << t << " for key " << first
                                             << ", earlier value " << earlier->second;
      }
      ++stats.scored;
    } else if (last) {
      return ::testing::AssertionFailure() << "final probe asks for an unseen key";
    } else if (target[t] != IGN) {
      return ::testing::AssertionFailure() << "first occurrence of key " << first << " scored";
    }
    if (!last) {
      const auto [it, inserted] = value_of.emplace(first, input[t + 1]);
      if (!inserted && it->second != input[t + 1]) {
        return ::testing::AssertionFailure() << "key " << first << " has two values";
      }
    }
  }
  if (target[n - 1] == IGN) return ::testing::AssertionFailure() << "final position not scored";
  stats.tokens += static_cast<int64_t>(n);
  ++stats.rows;
  return ::testing::AssertionSuccess();
}

// Training rows: the shift of one sequence, no IGN, one value per key within a row.
::testing::AssertionResult check_pair_recall_train_row(const std::vector<int32_t>& input,
                                                       const std::vector<int32_t>& target, int32_t num_kv_ids) {
  const size_t n = input.size();
  for (size_t t = 0; t + 1 < n; ++t) {
    if (target[t] != input[t + 1]) return ::testing::AssertionFailure() << "not shifted at " << t;
  }
  std::map<int32_t, int32_t> value_of;
  for (size_t t = 0; t < n; t += 2) {
    const int32_t value = t + 1 < n ? input[t + 1] : target[n - 1];
    if (input[t] >= num_kv_ids) continue;
    const auto [it, inserted] = value_of.emplace(input[t], value);
    if (!inserted && it->second != value) {
      return ::testing::AssertionFailure() << "key " << input[t] << " has two values";
    }
  }
  if (!value_of.count(input[n - 1])) {
    return ::testing::AssertionFailure() << "training probe key is new";
  }
  return ::testing::AssertionSuccess();
}

TEST(MadRecall, icr_baseline_scores_repeated_keys_and_is_fast) {
  const MadSetting s = baseline_setting(MadTask::InContextRecall);
  const auto start = std::chrono::steady_clock::now();
  const MadData data = generate(s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 1.0) << "baseline ICR (14080 rows) took " << seconds << " s";

  ASSERT_EQ(data.train.num_rows, 12800);
  ASSERT_EQ(data.test.num_rows, 1280);
  ASSERT_EQ(data.test.row_length, 127);
  for (int64_t r = 0; r < data.train.num_rows; ++r) {
    ASSERT_TRUE(check_pair_recall_train_row(input_row(data.train, r), target_row(data.train, r), 16))
        << "train row " << r;
  }
  PairRecallStats stats;
  for (int64_t r = 0; r < data.test.num_rows; ++r) {
    ASSERT_TRUE(check_pair_recall_test_row(input_row(data.test, r), target_row(data.test, r), 16, 16, stats))
        << "test row " << r;
  }
  const double mean_scored = double(stats.scored) / double(stats.rows);
  EXPECT_GE(mean_scored, 54.0);
  EXPECT_LE(mean_scored, 57.0);
  EXPECT_EQ(stats.noise_tokens, 0);
}

TEST(MadRecall, icr_vocab_change_moves_the_value_range) {
  MadSetting s = baseline_with_rows(MadTask::InContextRecall, 50, 100);
  s.vocab_size = 64;  // keys 0-31, values 32-63
  const MadData data = generate(s);
  PairRecallStats stats;
  for (int64_t r = 0; r < data.test.num_rows; ++r) {
    ASSERT_TRUE(check_pair_recall_test_row(input_row(data.test, r), target_row(data.test, r), 64, 64, stats))
        << "test row " << r;
  }
  // With 32 keys some are still new late in the row, so fewer than 63-32+1 are scored.
  EXPECT_GT(stats.scored, 0);
}

TEST(MadRecall, noisy_baseline_has_the_spec_noise_share) {
  const MadSetting s = baseline_setting(MadTask::NoisyInContextRecall);
  const MadData data = generate(s);
  PairRecallStats train_stats;
  for (int64_t r = 0; r < data.train.num_rows; ++r) {
    const auto input = input_row(data.train, r);
    ASSERT_TRUE(check_pair_recall_train_row(input, target_row(data.train, r), 16)) << "train row " << r;
    for (size_t t = 0; t < input.size(); ++t) {
      const bool noise = in(input[t], 16, 32);
      ASSERT_TRUE(noise || in(input[t], 0, 16)) << input[t];
      train_stats.noise_tokens += noise;
    }
    train_stats.tokens += static_cast<int64_t>(input.size());
  }
  PairRecallStats stats;
  for (int64_t r = 0; r < data.test.num_rows; ++r) {
    ASSERT_TRUE(check_pair_recall_test_row(input_row(data.test, r), target_row(data.test, r), 16, 32, stats))
        << "test row " << r;
  }
  const double train_share = double(train_stats.noise_tokens) / double(train_stats.tokens);
  const double test_share = double(stats.noise_tokens) / double(stats.tokens);
  EXPECT_NEAR(train_share, 0.195, 0.01);
  EXPECT_NEAR(test_share, 0.195, 0.01);
  const double mean_scored = double(stats.scored) / double(stats.rows);
  EXPECT_NEAR(mean_scored, 43.6, 1.5);
}

TEST(MadRecall, noisy_high_noise_change_keeps_the_layout) {
  MadSetting s = baseline_with_rows(MadTask::NoisyInContextRecall, 20, 300);
  s.vocab_size = 144;  // keys 0-63, values 64-127, noise 128-143
  s.frac_noise = 0.8;
  const MadData data = generate(s);
  PairRecallStats stats;
  for (int64_t r = 0; r < data.test.num_rows; ++r) {
    ASSERT_TRUE(check_pair_recall_test_row(input_row(data.test, r), target_row(data.test, r), 128, 144, stats))
        << "test row " << r;
  }
  EXPECT_NEAR(double(stats.noise_tokens) / double(stats.tokens), 2 * 0.8 * 62 / 127.0, 0.02);
}

// ---- fuzzy recall -------------------------------------------------------------------------

TEST(MadFuzzyRecall, reproduces_the_training_worked_example) {
  const MadSetting s = toy(MadTask::FuzzyInContextRecall, 16, 24);
  std::vector<int32_t> sequence(6, 15);
  for (int32_t t : {4, 5, 13, 10, 2, 4, 11, 7, 10, 3, 13, 14, 1, 3, 14, 12, 3, 13, 14}) {
    sequence.push_back(t);
  }
  ASSERT_EQ(sequence.size(), 25u);
  const MadRow row = recall_row(s, sequence, true);
  EXPECT_EQ(row.inputs, (std::vector<int32_t>{15, 15, 15, 15, 15, 15, 4, 5, 13, 10, 2, 4,
                                              11, 7,  10, 3,  13, 14, 1, 3, 14, 12, 3, 13}));
  EXPECT_EQ(row.targets, (std::vector<int32_t>{15, 15, 15, 15, 15, 4, 5, 13, 10, 2, 4,  11,
                                               7,  10, 3,  13, 14, 1, 3, 14, 12, 3, 13, 14}));
  // As a test row: key (3) first at S[15] (values 16-17), (1 3) is a different key, and
  // the final probe (3) at S[22] repeats it, so its values S[23..24] are scored at 22, 23.
  const MadRow test = recall_row(s, sequence, false);
  std::vector<int32_t> expected(24, IGN);
  expected[22] = 13;
  expected[23] = 14;
  EXPECT_EQ(test.targets, expected);
}

TEST(MadFuzzyRecall, reproduces_the_test_worked_example) {
  const MadSetting s = toy(MadTask::FuzzyInContextRecall, 16, 24);
  std::vector<int32_t> sequence(7, 15);
  for (int32_t t : {2, 3, 5, 11, 12, 8, 5, 2, 0, 8, 13, 11, 5, 2, 0, 8, 13, 11}) sequence.push_back(t);
  ASSERT_EQ(sequence.size(), 25u);
  const MadRow row = recall_row(s, sequence, false);
  EXPECT_EQ(row.inputs,
            (std::vector<int32_t>{15, 15, 15, 15, 15, 15, 15, 2, 3, 5, 11, 12, 8, 5, 2, 0, 8, 13, 11, 5, 2, 0, 8, 13}));
  std::vector<int32_t> expected(24, IGN);
  expected[21] = 8;
  expected[22] = 13;
  expected[23] = 11;
  EXPECT_EQ(row.targets, expected);
  // Pads after the start, or an empty value motif, do not fit the layout.
  std::vector<int32_t> bad = sequence;
  bad[10] = 15;
  EXPECT_THROW(recall_row(s, bad, false), hnas::ConfigError);
  EXPECT_THROW(recall_row(s, std::vector<int32_t>(25, 15), false), hnas::ConfigError);
}

struct Motif {
  std::vector<int32_t> key, value;
  size_t key_begin = 0;  // position in the input row
};

// Splits a fuzzy input row into motif pairs after the left pads. The last pair's value is
// cut by the shift (0-2 of its tokens are visible).
::testing::AssertionResult parse_fuzzy_row(const std::vector<int32_t>& input, int32_t vocab_size, size_t& num_pads,
                                           std::vector<Motif>& pairs) {
  const int32_t half = (vocab_size - 1) / 2;
  const int32_t pad = vocab_size - 1;
  size_t pos = 0;
  while (pos < input.size() && input[pos] == pad) ++pos;
  num_pads = pos;
  pairs.clear();
  while (pos < input.size()) {
    Motif m;
    m.key_begin = pos;
    while (pos < input.size() && in(input[pos], 0, half)) m.key.push_back(input[pos++]);
    while (pos < input.size() && in(input[pos], half, pad)) m.value.push_back(input[pos++]);
    if (m.key.empty() || (m.value.empty() && pos < input.size())) {
      return ::testing::AssertionFailure() << "bad token " << input[pos] << " at " << pos;
    }
    for (const auto* motif : {&m.key, &m.value}) {
      if (std::set<int32_t>(motif->begin(), motif->end()).size() != motif->size()) {
        return ::testing::AssertionFailure() << "repeated id in the motif at " << m.key_begin;
      }
    }
    pairs.push_back(m);
  }
  return ::testing::AssertionSuccess();
}

TEST(MadFuzzyRecall, baseline_rows_follow_the_layout_and_scoring_rule) {
  const MadSetting s = baseline_with_rows(MadTask::FuzzyInContextRecall, 2000, 1280);
  const MadData data = generate(s);
  const size_t length = 128;
  ASSERT_EQ(data.train.row_length, 128);

  std::set<size_t> train_key_sizes;
  for (int64_t r = 0; r < data.train.num_rows; ++r) {
    const auto input = input_row(data.train, r);
    const auto target = target_row(data.train, r);
    for (size_t t = 0; t + 1 < length; ++t) ASSERT_EQ(target[t], input[t + 1]) << r << " " << t;
    ASSERT_TRUE(in(target[length - 1], 7, 15)) << "train row " << r << " does not end on a value";
    size_t pads = 0;
    std::vector<Motif> pairs;
    ASSERT_TRUE(parse_fuzzy_row(input, 16, pads, pairs)) << "train row " << r;
    ASSERT_GE(pads, 2u) << r;
    for (size_t i = 0; i < pairs.size(); ++i) {
      ASSERT_LE(pairs[i].key.size(), 3u);
      ASSERT_LE(pairs[i].value.size(), 3u);
      train_key_sizes.insert(pairs[i].key.size());
    }
  }
  EXPECT_EQ(train_key_sizes, (std::set<size_t>{1, 2, 3}));

  int64_t scored = 0;
  int64_t unanswerable = 0;
  size_t min_pads = length;
  size_t max_pads = 0;
  for (int64_t r = 0; r < data.test.num_rows; ++r) {
    const auto input = input_row(data.test, r);
    const auto target = target_row(data.test, r);
    size_t pads = 0;
    std::vector<Motif> pairs;
    ASSERT_TRUE(parse_fuzzy_row(input, 16, pads, pairs)) << "test row " << r;
    min_pads = std::min(min_pads, pads);
    max_pads = std::max(max_pads, pads);
    std::vector<int32_t> expected(length, IGN);
    std::map<std::vector<int32_t>, std::vector<int32_t>> value_of;
    for (size_t i = 0; i < pairs.size(); ++i) {
      const Motif& m = pairs[i];
      ASSERT_EQ(m.key.size(), 3u) << "test keys have the maximal size, row " << r;
      const size_t predict_from = m.key_begin + m.key.size() - 1;  // last key token
      const auto earlier = value_of.find(m.key);
      if (i + 1 < pairs.size()) {
        ASSERT_GE(m.value.size(), 1u);
        if (earlier != value_of.end()) {
          ASSERT_EQ(earlier->second, m.value) << "a repeated key changed its value, row " << r;
          std::copy(m.value.begin(), m.value.end(), expected.begin() + predict_from);
        }
        value_of.emplace(m.key, m.value);
        continue;
      }
      // The final probe: its 1-3 value tokens are scored from the last key token on.
      const size_t count = length - predict_from;
      ASSERT_TRUE(count >= 1 && count <= 3) << "final probe with " << count << " values, row " << r;
      std::vector<int32_t> probe_value(target.begin() + predict_from, target.end());
      for (size_t j = 0; j < m.value.size(); ++j) ASSERT_EQ(probe_value[j], m.value[j]) << r;
      for (int32_t v : probe_value) ASSERT_TRUE(in(v, 7, 15)) << v;
      if (earlier != value_of.end()) {
        ASSERT_EQ(probe_value, earlier->second) << "probe answer differs from its pair, row " << r;
      } else {
        ++unanswerable;
      }
      std::copy(probe_value.begin(), probe_value.end(), expected.begin() + predict_from);
    }
    ASSERT_EQ(target, expected) << "test row " << r;
    scored += std::count_if(target.begin(), target.end(), [](int32_t t) { return t != IGN; });
  }
  EXPECT_GE(min_pads, 2u);
  EXPECT_LE(max_pads, 9u);
  const double mean_scored = double(scored) / double(data.test.num_rows);
  EXPECT_GT(mean_scored, 3.5);
  EXPECT_LT(mean_scored, 6.0);
  // The reference's probe is sometimes never inserted (mad-spec §4.3 step 6: 1.5-2 %).
  const double unanswerable_share = double(unanswerable) / double(data.test.num_rows);
  EXPECT_GT(unanswerable_share, 0.004);
  EXPECT_LT(unanswerable_share, 0.04);
}

// ---- selective copying ----------------------------------------------------------------------

TEST(MadSelectiveCopying, reproduces_the_worked_example) {
  MadSetting s = toy(MadTask::SelectiveCopying, 16, 12);
  s.num_tokens_to_copy = 3;
  const MadRow row = selective_copying_row(s, {13, 8, 9}, {2, 2, 1});
  EXPECT_EQ(row.inputs, (std::vector<int32_t>{14, 14, 13, 14, 14, 8, 14, 9, 15, 14, 14, 14}));
  EXPECT_EQ(row.targets, (std::vector<int32_t>{IGN, IGN, IGN, IGN, IGN, IGN, IGN, IGN, IGN, 13, 8, 9}));
  EXPECT_THROW(selective_copying_row(s, {13, 8, 9}, {2, 2, 2}), hnas::ConfigError);
  EXPECT_THROW(selective_copying_row(s, {13, 8, 14}, {2, 2, 1}), hnas::ConfigError);
}

void check_selective_copying(const MadSetting& s) {
  const MadData data = generate(s);
  const int64_t n = s.num_tokens_to_copy;
  const int64_t length = s.seq_len;
  const int32_t blank = int32_t(s.vocab_size - 2);
  const int32_t copy = int32_t(s.vocab_size - 1);
  for (const MadSplit* split : {&data.train, &data.test}) {
    ASSERT_EQ(split->row_length, length);
    for (int64_t r = 0; r < split->num_rows; ++r) {
      const auto input = input_row(*split, r);
      const auto target = target_row(*split, r);
      const int64_t copy_pos = length - n - 1;
      ASSERT_EQ(input[copy_pos], copy) << s.label() << " row " << r;
      std::vector<int32_t> data_tokens;
      int64_t blanks = 0;
      for (int64_t t = 0; t < copy_pos; ++t) {
        if (input[t] == blank) {
          ++blanks;
        } else {
          ASSERT_TRUE(in(input[t], 0, blank)) << input[t] << " at " << t;
          data_tokens.push_back(input[t]);
        }
      }
      ASSERT_EQ(blanks, length - 2 * n - 1) << "row " << r;
      ASSERT_EQ(int64_t(data_tokens.size()), n);
      ASSERT_NE(input[copy_pos - 1], blank) << "blank before the copy token, row " << r;
      ASSERT_EQ(input[copy_pos - 1], data_tokens.back());
      for (int64_t t = copy_pos + 1; t < length; ++t) ASSERT_EQ(input[t], blank) << t;
      for (int64_t t = 0; t < length - n; ++t) ASSERT_EQ(target[t], IGN) << "row " << r << " " << t;
      ASSERT_TRUE(std::equal(data_tokens.begin(), data_tokens.end(), target.begin() + (length - n)))
          << "targets are not the data in order, row " << r;
    }
  }
}

TEST(MadSelectiveCopying, rows_hold_the_data_blanks_and_copy_token_in_place) {
  check_selective_copying(baseline_with_rows(MadTask::SelectiveCopying, 200, 100));
  MadSetting more = baseline_with_rows(MadTask::SelectiveCopying, 50, 50);
  more.num_tokens_to_copy = 96;
  check_selective_copying(more);
  MadSetting wide = baseline_with_rows(MadTask::SelectiveCopying, 50, 50);
  wide.vocab_size = 128;
  check_selective_copying(wide);
}

TEST(MadSelectiveCopying, rows_often_start_with_blanks) {
  const MadData data = generate(baseline_with_rows(MadTask::SelectiveCopying, 400, 1));
  int64_t leading = 0;
  for (int64_t r = 0; r < data.train.num_rows; ++r) leading += input_row(data.train, r)[0] == 14;
  // 223 blanks over 16 gaps: about 14 leading blanks per row, so nearly every row has one.
  EXPECT_GT(leading, 350);
}

// ---- compression ---------------------------------------------------------------------------

TEST(MadCompression, targets_reproduce_the_whole_input) {
  for (int64_t vocab_size : {16, 128}) {
    MadSetting s = baseline_with_rows(MadTask::Compression, 200, 100);
    s.vocab_size = vocab_size;
    const MadData data = generate(s);
    const int32_t compression = int32_t(vocab_size - 1);
    for (const MadSplit* split : {&data.train, &data.test}) {
      EXPECT_EQ(split->targets, split->inputs);
      std::set<int32_t> seen;
      for (int64_t r = 0; r < split->num_rows; ++r) {
        const auto input = input_row(*split, r);
        ASSERT_EQ(input.back(), compression);
        for (size_t t = 0; t + 1 < input.size(); ++t) {
          ASSERT_TRUE(in(input[t], 0, compression)) << input[t];
          seen.insert(input[t]);
        }
      }
      EXPECT_EQ(seen.size(), size_t(compression)) << "every data id occurs";
    }
  }
}

// ---- memorization --------------------------------------------------------------------------

TEST(MadMemorization, reproduces_the_worked_example) {
  const MadSetting s = toy(MadTask::Memorization, 16, 12);
  const std::vector<int32_t> map = {13, 8, 14, 11, 9, 7, 10};
  const MadRow row = memorization_row(s, map, {1, 1, 5, 1, 6, 6});
  EXPECT_EQ(row.inputs, (std::vector<int32_t>{1, 15, 1, 15, 5, 15, 1, 15, 6, 15, 6, 15}));
  EXPECT_EQ(row.targets, (std::vector<int32_t>{IGN, 8, IGN, 8, IGN, 7, IGN, 8, IGN, 10, IGN, 10}));
  EXPECT_THROW(memorization_row(s, map, {1, 1, 5, 1, 6, 7}), hnas::ConfigError);
  EXPECT_THROW(memorization_row(s, map, {1, 1}), hnas::ConfigError);
}

TEST(MadMemorization, map_is_injective_fixed_and_seed_dependent) {
  const MadSetting s = baseline_setting(MadTask::Memorization);
  const std::vector<int32_t> map = memorization_map(s);
  ASSERT_EQ(map.size(), 127u);
  std::set<int32_t> values(map.begin(), map.end());
  EXPECT_EQ(values.size(), map.size()) << "not injective";
  for (int32_t v : map) EXPECT_TRUE(in(v, 127, 255)) << v;
  EXPECT_EQ(memorization_map(s), map);
  MadSetting other = s;
  other.seed = 99;
  EXPECT_NE(memorization_map(other), map);
  // Not the identity-like pairing key k -> 127 + k.
  int64_t fixed = 0;
  for (size_t k = 0; k < map.size(); ++k) fixed += map[k] == int32_t(127 + k);
  EXPECT_LT(fixed, 10);
}

TEST(MadMemorization, rows_query_the_same_map_in_train_and_test) {
  const MadSetting s = baseline_setting(MadTask::Memorization);
  const std::vector<int32_t> map = memorization_map(s);
  const MadData data = generate(s);
  std::set<int32_t> train_keys;
  for (const MadSplit* split : {&data.train, &data.test}) {
    for (int64_t r = 0; r < split->num_rows; ++r) {
      const auto input = input_row(*split, r);
      const auto target = target_row(*split, r);
      for (size_t t = 0; t < input.size(); t += 2) {
        ASSERT_TRUE(in(input[t], 0, 127)) << input[t];
        ASSERT_EQ(input[t + 1], 255);
        ASSERT_EQ(target[t], IGN);
        ASSERT_EQ(target[t + 1], map[size_t(input[t])]) << "row " << r << " pos " << t + 1;
        if (split == &data.train) train_keys.insert(input[t]);
      }
    }
  }
  // 4096 training draws over 127 keys: every key is seen in training.
  EXPECT_EQ(train_keys.size(), 127u);
}

TEST(MadMemorization, larger_vocabularies_map_every_key) {
  MadSetting s = baseline_with_rows(MadTask::Memorization, 20, 20);
  s.vocab_size = 8192;  // keys 0-4094, values 4095-8190, insert 8191
  const std::vector<int32_t> map = memorization_map(s);
  ASSERT_EQ(map.size(), 4095u);
  EXPECT_EQ(std::set<int32_t>(map.begin(), map.end()).size(), 4095u);
  for (int32_t v : map) ASSERT_TRUE(in(v, 4095, 8191)) << v;
  const MadData data = generate(s);
  for (size_t t = 1; t < data.test.inputs.size(); t += 2) ASSERT_EQ(data.test.inputs[t], 8191);
}

}  // namespace
