// SPDX-License-Identifier: Apache-2.0
// The three recall tasks (mad-spec §4.1-4.3). Each generator draws the full sequence S and
// hands it to recall_row(), which derives the probe targets from S alone: a pair is scored
// when its key occurred earlier, and the final probe always. Keeping that rule in one pure
// function lets the tests check the spec's worked examples against the generator's code.
#include <algorithm>
#include <array>

#include "hnas/core/check.hpp"
#include "mad_generators.hpp"

namespace hnas::data {
namespace {

bool in_range(int32_t token, int32_t begin, int32_t end) { return token >= begin && token < end; }

// Rows are (S[0:-1], S[1:]) for training and (S[0:-1], T[1:]) for test.
MadRow shift_instance(const std::vector<int32_t>& sequence, const std::vector<int32_t>& probe, bool is_training) {
  const std::vector<int32_t>& targets = is_training ? sequence : probe;
  MadRow row;
  row.inputs.assign(sequence.begin(), sequence.end() - 1);
  row.targets.assign(targets.begin() + 1, targets.end());
  return row;
}

MadRow pair_recall_row(const MadSetting& setting, const MadLayout& layout, const std::vector<int32_t>& s,
                       bool is_training) {
  const int64_t num_slots = setting.seq_len / 2;
  std::vector<int32_t> probe(s.size(), kIgnoreIndex);
  std::vector<char> seen(static_cast<size_t>(layout.key_end - layout.key_begin), 0);
  for (int64_t slot = 0; slot < num_slots; ++slot) {
    const int32_t first = s[2 * slot];
    const int32_t second = s[2 * slot + 1];
    const bool last = slot == num_slots - 1;
    if (in_range(first, layout.noise_begin, layout.noise_end)) {
      HNAS_CHECK(!last && in_range(second, layout.noise_begin, layout.noise_end), ConfigError,
                 "recall_row: slot " << slot << " mixes noise and non-noise ids, or is the probe");
      continue;  // noise never enters the map and is never scored
    }
    HNAS_CHECK(
        in_range(first, layout.key_begin, layout.key_end) && in_range(second, layout.value_begin, layout.value_end),
        ConfigError, "recall_row: slot " << slot << " is (" << first << ", " << second << "), not a (key, value) pair");
    char& key_seen = seen[static_cast<size_t>(first - layout.key_begin)];
    if (key_seen || last) probe[2 * slot + 1] = second;
    key_seen = 1;
  }
  return shift_instance(s, probe, is_training);
}

struct MotifPair {
  size_t key_begin, key_size, value_begin, value_size;  // offsets into S
};

// The pairs of one row, chained by a small hash of their key motif so that a lookup scans
// about one candidate instead of every earlier pair (rows at L 1024 hold about 250 pairs).
class PairIndex {
 public:
  PairIndex() { head_.fill(-1); }

  /// An earlier pair whose key motif equals key[0, size) in `s`, or nullptr.
  const MotifPair* find(const std::vector<int32_t>& s, const int32_t* key, size_t size) const {
    for (int32_t i = head_[bucket(key, size)]; i >= 0; i = next_[static_cast<size_t>(i)]) {
      const MotifPair& q = pairs_[static_cast<size_t>(i)];
      if (q.key_size == size && std::equal(key, key + size, s.data() + q.key_begin)) return &q;
    }
    return nullptr;
  }

  /// Records a pair of `s`.
  void add(const std::vector<int32_t>& s, const MotifPair& pair) {
    int32_t& head = head_[bucket(s.data() + pair.key_begin, pair.key_size)];
    next_.push_back(head);
    head = static_cast<int32_t>(pairs_.size());
    pairs_.push_back(pair);
  }

 private:
  static size_t bucket(const int32_t* key, size_t size) {
    uint64_t h = size;
    for (size_t i = 0; i < size; ++i) h = (h + static_cast<uint32_t>(key[i])) * 0x9E3779B97F4A7C15ULL;
    return static_cast<size_t>(h >> (64 - kBucketBits));  // the top bits mix every id
  }
  static constexpr int kBucketBits = 8;
  static constexpr size_t kBuckets = size_t{1} << kBucketBits;
  std::array<int32_t, kBuckets> head_;
  std::vector<int32_t> next_;
  std::vector<MotifPair> pairs_;
};

MadRow fuzzy_recall_row(const MadSetting& setting, const MadLayout& layout, const std::vector<int32_t>& s,
                        bool is_training) {
  // Keys and values come from disjoint ranges, so maximal runs of key ids and of value ids
  // split S into motifs without any markers.
  size_t pos = 0;
  while (pos < s.size() && s[pos] == layout.pad) ++pos;
  std::vector<MotifPair> pairs;
  while (pos < s.size()) {
    MotifPair pair{pos, 0, 0, 0};
    while (pos < s.size() && in_range(s[pos], layout.key_begin, layout.key_end)) ++pos;
    pair.key_size = pos - pair.key_begin;
    pair.value_begin = pos;
    while (pos < s.size() && in_range(s[pos], layout.value_begin, layout.value_end)) ++pos;
    pair.value_size = pos - pair.value_begin;
    HNAS_CHECK(pair.key_size >= 1 && pair.key_size <= static_cast<size_t>(setting.k_motif_size) &&
                   pair.value_size >= 1 && pair.value_size <= static_cast<size_t>(setting.v_motif_size),
               ConfigError,
               "recall_row: no (key motif, value motif) pair at position "
                   << pair.key_begin << " (pads only at the start, motif sizes 1.." << setting.k_motif_size
                   << " and 1.." << setting.v_motif_size << ")");
    pairs.push_back(pair);
  }
  HNAS_CHECK(!pairs.empty(), ConfigError, "recall_row: the sequence holds no probe pair");

  std::vector<int32_t> probe(s.size(), kIgnoreIndex);
  PairIndex earlier;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const MotifPair& p = pairs[i];
    const bool repeated = earlier.find(s, s.data() + p.key_begin, p.key_size) != nullptr;
    earlier.add(s, p);
    if (repeated || i + 1 == pairs.size()) {
      std::copy_n(s.begin() + p.value_begin, p.value_size, probe.begin() + p.value_begin);
    }
  }
  return shift_instance(s, probe, is_training);
}

// An ordered tuple of `size` distinct ids from [begin, end), uniform over all such tuples.
// Sizes are at most 16, so rejecting repeats stays cheap even when size equals the range.
void append_motif(Rng& rng, int32_t begin, int32_t end, int64_t size, std::vector<int32_t>& out) {
  const size_t start = out.size();
  while (static_cast<int64_t>(out.size() - start) < size) {
    const int32_t token = detail::draw_token(rng, begin, end);
    if (std::find(out.begin() + static_cast<std::ptrdiff_t>(start), out.end(), token) == out.end()) {
      out.push_back(token);
    }
  }
}

}  // namespace

MadRow recall_row(const MadSetting& setting, const std::vector<int32_t>& sequence, bool is_training) {
  const MadLayout layout = mad_layout(setting);
  switch (setting.task) {
    case MadTask::InContextRecall:
    case MadTask::NoisyInContextRecall:
      HNAS_CHECK(static_cast<int64_t>(sequence.size()) == setting.seq_len, ConfigError,
                 "recall_row: sequence of length " << sequence.size() << ", expected seq_len " << setting.seq_len);
      return pair_recall_row(setting, layout, sequence, is_training);
    case MadTask::FuzzyInContextRecall:
      HNAS_CHECK(
          static_cast<int64_t>(sequence.size()) == setting.seq_len + 1, ConfigError,
          "recall_row: sequence of length " << sequence.size() << ", expected seq_len+1 " << setting.seq_len + 1);
      return fuzzy_recall_row(setting, layout, sequence, is_training);
    default:
      throw ConfigError(std::string("recall_row: ") + task_name(setting.task) + " is not a recall task");
  }
}

namespace detail {

MadRow draw_recall(const MadSetting& setting, const MadLayout& layout, Rng& rng, bool is_training) {
  const int64_t num_slots = setting.seq_len / 2;
  const int32_t num_keys = layout.key_end - layout.key_begin;
  const bool noisy = setting.frac_noise > 0.0;
  // One slot stays noise-free so the probe (almost) always has a key to ask about.
  const int64_t protected_slot = noisy ? rng.uniform_int(int64_t{0}, num_slots) : -1;

  std::vector<int32_t> s;
  s.reserve(static_cast<size_t>(setting.seq_len));
  std::vector<int32_t> value_of(static_cast<size_t>(num_keys), kNoToken);
  std::vector<int32_t> present;  // distinct keys in order of first occurrence
  for (int64_t slot = 0; slot + 1 < num_slots; ++slot) {
    if (noisy && slot != protected_slot && rng.bernoulli(setting.frac_noise)) {
      s.push_back(draw_token(rng, layout.noise_begin, layout.noise_end));
      s.push_back(draw_token(rng, layout.noise_begin, layout.noise_end));
      continue;
    }
    const int32_t key = draw_token(rng, layout.key_begin, layout.key_end);
    int32_t& value = value_of[static_cast<size_t>(key - layout.key_begin)];
    if (value == kNoToken) {
      value = draw_token(rng, layout.value_begin, layout.value_end);
      present.push_back(key);
    }
    s.push_back(key);
    s.push_back(value);
  }
  // Final probe. Only if every ordinary slot became noise (probability below 1e-7 in the
  // benchmark) is there no key to ask about; the probe is then a fresh, unanswerable pair.
  int32_t key;
  int32_t value;
  if (!present.empty()) {
    key = present[rng.uniform_int(present.size())];
    value = value_of[static_cast<size_t>(key - layout.key_begin)];
  } else {
    key = draw_token(rng, layout.key_begin, layout.key_end);
    value = draw_token(rng, layout.value_begin, layout.value_end);
  }
  s.push_back(key);
  s.push_back(value);
  return pair_recall_row(setting, layout, s, is_training);
}

MadRow draw_fuzzy_recall(const MadSetting& setting, const MadLayout& layout, Rng& rng, bool is_training) {
  const int64_t k_max = setting.k_motif_size;
  const int64_t v_max = setting.v_motif_size;
  // Training mixes key sizes; test keys all have the maximal size (mad-spec §8 #5).
  auto key_size = [&] { return is_training ? rng.uniform_int(int64_t{1}, k_max + 1) : k_max; };
  auto value_size = [&] { return rng.uniform_int(int64_t{1}, v_max + 1); };

  std::vector<int32_t> probe_key;
  std::vector<int32_t> probe_value;
  const int64_t probe_key_size = key_size();
  const int64_t probe_value_size = value_size();
  append_motif(rng, layout.key_begin, layout.key_end, probe_key_size, probe_key);
  append_motif(rng, layout.value_begin, layout.value_end, probe_value_size, probe_value);
  const auto probe_size = static_cast<int64_t>(probe_key.size() + probe_value.size());
  const int64_t offset = rng.uniform_int(int64_t{0}, setting.seq_len - 2 * probe_size);

  std::vector<int32_t> body;  // S without the left pads
  body.reserve(static_cast<size_t>(setting.seq_len + 1));
  PairIndex pairs;
  auto append_pair = [&](const std::vector<int32_t>& key, const int32_t* value, size_t value_len) {
    const MotifPair p{body.size(), key.size(), body.size() + key.size(), value_len};
    body.insert(body.end(), key.begin(), key.end());
    body.insert(body.end(), value, value + value_len);
    pairs.add(body, p);
  };

  // The bound leaves room for one more largest pair plus the final probe, so S gets at
  // least two pads. The loop may end before `offset`: the probe then never appears before
  // the final query (about 1.5-2 % of baseline rows, as in the reference).
  const int64_t limit = setting.seq_len - probe_size - (k_max + v_max);
  bool inserted = false;
  std::vector<int32_t> key;
  std::vector<int32_t> fresh_value;
  while (static_cast<int64_t>(body.size()) < limit) {
    const int64_t ks = key_size();
    const int64_t vs = value_size();
    if (static_cast<int64_t>(body.size()) >= offset && !inserted) {
      append_pair(probe_key, probe_value.data(), probe_value.size());
      inserted = true;
      continue;
    }
    key.clear();
    append_motif(rng, layout.key_begin, layout.key_end, ks, key);
    if (key == probe_key) {
      append_pair(key, probe_value.data(), probe_value.size());
      inserted = true;
      continue;
    }
    const MotifPair* earlier = pairs.find(body, key.data(), key.size());
    if (earlier != nullptr) {
      // A repeated key keeps its first value, whatever size was drawn now. Copy first:
      // append_pair may reallocate `body`.
      fresh_value.assign(body.begin() + static_cast<std::ptrdiff_t>(earlier->value_begin),
                         body.begin() + static_cast<std::ptrdiff_t>(earlier->value_begin + earlier->value_size));
    } else {
      fresh_value.clear();
      append_motif(rng, layout.value_begin, layout.value_end, vs, fresh_value);
    }
    append_pair(key, fresh_value.data(), fresh_value.size());
  }
  append_pair(probe_key, probe_value.data(), probe_value.size());

  const auto length = static_cast<size_t>(setting.seq_len + 1);
  HNAS_ASSERT(body.size() + 2 <= length, "fuzzy recall body of " << body.size() << " tokens");
  std::vector<int32_t> s(length - body.size(), layout.pad);
  s.insert(s.end(), body.begin(), body.end());
  return fuzzy_recall_row(setting, layout, s, is_training);
}

}  // namespace detail
}  // namespace hnas::data
