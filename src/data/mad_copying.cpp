// SPDX-License-Identifier: Apache-2.0
// The two tasks whose targets reproduce input tokens without a shift: selective copying
// (mad-spec §4.4) and compression (§4.5). Both have one row form for train and test.
#include <numeric>

#include "hnas/core/check.hpp"
#include "mad_generators.hpp"

namespace hnas::data {

MadRow selective_copying_row(const MadSetting& setting, const std::vector<int32_t>& data_tokens,
                             const std::vector<int64_t>& blanks_before) {
  HNAS_CHECK(setting.task == MadTask::SelectiveCopying, ConfigError,
             "selective_copying_row: setting is " << task_name(setting.task));
  const MadLayout layout = mad_layout(setting);
  const int64_t n = setting.num_tokens_to_copy;
  const int64_t num_blanks = setting.seq_len - 2 * n - 1;
  HNAS_CHECK(static_cast<int64_t>(data_tokens.size()) == n && static_cast<int64_t>(blanks_before.size()) == n,
             ConfigError,
             "selective_copying_row: need " << n << " data tokens and gap counts, got " << data_tokens.size() << " and "
                                            << blanks_before.size());
  HNAS_CHECK(std::accumulate(blanks_before.begin(), blanks_before.end(), int64_t{0}) == num_blanks, ConfigError,
             "selective_copying_row: the gap counts must sum to L-2n-1 = " << num_blanks);

  MadRow row;
  row.inputs.reserve(static_cast<size_t>(setting.seq_len));
  for (int64_t i = 0; i < n; ++i) {
    const int32_t token = data_tokens[static_cast<size_t>(i)];
    const int64_t gap = blanks_before[static_cast<size_t>(i)];
    HNAS_CHECK(token >= layout.data_begin && token < layout.data_end && gap >= 0, ConfigError,
               "selective_copying_row: bad data token " << token << " or gap " << gap << " at index " << i);
    row.inputs.insert(row.inputs.end(), static_cast<size_t>(gap), layout.blank);
    row.inputs.push_back(token);
  }
  row.inputs.push_back(layout.copy);
  row.inputs.insert(row.inputs.end(), static_cast<size_t>(n), layout.blank);
  // Unshifted: the first output after the copy token is data token 0.
  row.targets.assign(static_cast<size_t>(setting.seq_len - n), kIgnoreIndex);
  row.targets.insert(row.targets.end(), data_tokens.begin(), data_tokens.end());
  return row;
}

namespace detail {

MadRow draw_selective_copying(const MadSetting& setting, const MadLayout& layout, Rng& rng) {
  const int64_t n = setting.num_tokens_to_copy;
  std::vector<int32_t> data_tokens(static_cast<size_t>(n));
  for (int32_t& token : data_tokens) token = draw_token(rng, layout.data_begin, layout.data_end);
  // Each blank goes in front of a uniformly chosen data token, so the gaps are
  // multinomial and no blank ever sits between the last data token and the copy token.
  std::vector<int64_t> blanks_before(static_cast<size_t>(n), 0);
  for (int64_t b = 0; b < setting.seq_len - 2 * n - 1; ++b) {
    ++blanks_before[rng.uniform_int(static_cast<uint64_t>(n))];
  }
  return selective_copying_row(setting, data_tokens, blanks_before);
}

MadRow draw_compression(const MadSetting& setting, const MadLayout& layout, Rng& rng) {
  MadRow row;
  row.inputs.resize(static_cast<size_t>(setting.seq_len));
  for (size_t i = 0; i + 1 < row.inputs.size(); ++i) {
    row.inputs[i] = draw_token(rng, layout.data_begin, layout.data_end);
  }
  row.inputs.back() = layout.compression;
  // The AutoEncoder reconstructs the whole row, compression token included.
  row.targets = row.inputs;
  return row;
}

}  // namespace detail
}  // namespace hnas::data
