// SPDX-License-Identifier: Apache-2.0
// Memorization (mad-spec §4.6): a fixed key -> value map per setting, queried with the
// value predicted at the insert token. The map must be learned in the weights, since no
// row shows it in context.
#include "hnas/core/check.hpp"
#include "mad_generators.hpp"

namespace hnas::data {
namespace {

void shuffle(std::vector<int32_t>& ids, Rng& rng) {
  for (size_t i = ids.size(); i > 1; --i) {
    std::swap(ids[i - 1], ids[rng.uniform_int(static_cast<uint64_t>(i))]);
  }
}

}  // namespace

std::vector<int32_t> memorization_map(const MadSetting& setting) {
  HNAS_CHECK(setting.task == MadTask::Memorization, ConfigError,
             "memorization_map: setting is " << task_name(setting.task));
  const MadLayout layout = mad_layout(setting);
  // Its own stream, so the map does not share draws with the rows (the reference seeds
  // both from the same seed; only the distribution matters).
  Rng rng(derive_seed(setting.seed, "mad/memorization-map"));
  std::vector<int32_t> keys;
  std::vector<int32_t> values;
  for (int32_t k = layout.key_begin; k < layout.key_end; ++k) keys.push_back(k);
  for (int32_t v = layout.value_begin; v < layout.value_end; ++v) values.push_back(v);
  shuffle(keys, rng);
  shuffle(values, rng);
  // Pairing position by position; with an odd number of ids one value stays unused.
  std::vector<int32_t> map(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    map[static_cast<size_t>(keys[i] - layout.key_begin)] = values[i];
  }
  return map;
}

MadRow memorization_row(const MadSetting& setting, const std::vector<int32_t>& map, const std::vector<int32_t>& keys) {
  HNAS_CHECK(setting.task == MadTask::Memorization, ConfigError,
             "memorization_row: setting is " << task_name(setting.task));
  const MadLayout layout = mad_layout(setting);
  HNAS_CHECK(static_cast<int64_t>(map.size()) == layout.key_end - layout.key_begin, ConfigError,
             "memorization_row: map of size " << map.size() << ", expected one value per key ("
                                              << layout.key_end - layout.key_begin << ")");
  HNAS_CHECK(static_cast<int64_t>(keys.size()) * 2 == setting.seq_len, ConfigError,
             "memorization_row: " << keys.size() << " keys, expected seq_len/2 = " << setting.seq_len / 2);
  MadRow row;
  row.inputs.reserve(static_cast<size_t>(setting.seq_len));
  row.targets.reserve(static_cast<size_t>(setting.seq_len));
  for (int32_t key : keys) {
    HNAS_CHECK(key >= layout.key_begin && key < layout.key_end, ConfigError,
               "memorization_row: " << key << " is not a key id");
    // Unshifted: the value is predicted at the insert token that follows its key.
    row.inputs.push_back(key);
    row.inputs.push_back(layout.insert);
    row.targets.push_back(kIgnoreIndex);
    row.targets.push_back(map[static_cast<size_t>(key - layout.key_begin)]);
  }
  return row;
}

namespace detail {

MadRow draw_memorization(const MadSetting& setting, const MadLayout& layout, const std::vector<int32_t>& map,
                         Rng& rng) {
  std::vector<int32_t> keys(static_cast<size_t>(setting.seq_len / 2));
  for (int32_t& key : keys) key = draw_token(rng, layout.key_begin, layout.key_end);
  return memorization_row(setting, map, keys);
}

}  // namespace detail
}  // namespace hnas::data
