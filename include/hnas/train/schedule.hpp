// SPDX-License-Identifier: Apache-2.0
// Learning-rate schedules as pure functions of the step: linear warm-up followed by
// cosine decay, warmup-stable-decay (WSD, trapezoid), or a constant rate.
// Pure functions of the step: every rank computes the same rate.
#pragma once

#include <cstdint>
#include <string>

namespace hnas::train {

enum class ScheduleKind { Constant, Cosine, Wsd };

/// Parses "constant", "cosine" or "wsd"; throws ConfigError naming `key` otherwise.
ScheduleKind parse_schedule(const std::string& text, const std::string& key);
const char* schedule_name(ScheduleKind kind);

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::Cosine;
  double peak_lr = 5e-4;
  double min_lr = 1e-6;      ///< reached at the last step (cosine, WSD)
  int64_t warmup_steps = 0;  ///< linear ramp from peak/warmup to peak
  int64_t total_steps = 1;
  double decay_fraction = 0.2;  ///< WSD: the last fraction of steps decays linearly to min_lr

  /// Learning rate for 0-based `step` (the rate used by the update of that step).
  double at(int64_t step) const;
};

}  // namespace hnas::train
