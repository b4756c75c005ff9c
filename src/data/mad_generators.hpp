// SPDX-License-Identifier: Apache-2.0
// Module-private: one instance generator per MAD task. generate() (mad.cpp) owns the Rng
// stream and the split buffers; these functions only draw one row each.
#pragma once

#include <vector>

#include "hnas/core/rng.hpp"
#include "hnas/data/mad.hpp"

namespace hnas::data::detail {

/// In-context recall, noisy or not (mad-spec §4.1, §4.2). Row length L-1.
MadRow draw_recall(const MadSetting& setting, const MadLayout& layout, Rng& rng, bool is_training);

/// Fuzzy in-context recall (mad-spec §4.3). Row length L.
MadRow draw_fuzzy_recall(const MadSetting& setting, const MadLayout& layout, Rng& rng, bool is_training);

/// Selective copying (mad-spec §4.4). The reference takes the blank positions from numpy's
/// global RNG; here they come from the same stream as everything else.
MadRow draw_selective_copying(const MadSetting& setting, const MadLayout& layout, Rng& rng);

/// Compression (mad-spec §4.5).
MadRow draw_compression(const MadSetting& setting, const MadLayout& layout, Rng& rng);

/// Memorization (mad-spec §4.6) with the setting's fixed key -> value map.
MadRow draw_memorization(const MadSetting& setting, const MadLayout& layout, const std::vector<int32_t>& map, Rng& rng);

/// Uniform id in [begin, end) as a token.
inline int32_t draw_token(Rng& rng, int32_t begin, int32_t end) {
  return static_cast<int32_t>(rng.uniform_int(int64_t{begin}, int64_t{end}));
}

}  // namespace hnas::data::detail
