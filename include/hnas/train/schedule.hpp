// SPDX-License-Identifier: Apache-2.0
// Learning-rate schedules as pure functions of the step: linear warm-up followed by
// cosine decay, warmup-stable-decay (WSD, trapezoid), or a constant rate.
// Pure functions of the step: every rank computes the same rate.
#pragma once

#include <cstdint>
#include <string>

namespace hnas::train {

enum class ScheduleKind { Constant, Cosine, Wsd };

/// How a WSD schedule's cool-down falls from the peak to min_lr over its decay steps
/// (progress t from 0 to 1): linear 1 - t, cosine (1 + cos(pi t)) / 2, or 1 - sqrt(t)
/// (the "1-sqrt" cool-down of Hägele et al.).
enum class DecayShape { Linear, Cosine, OneMinusSqrt };

/// Parses "constant", "cosine" or "wsd"; throws ConfigError naming `key` otherwise.
ScheduleKind parse_schedule(const std::string& text, const std::string& key);
const char* schedule_name(ScheduleKind kind);

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::Cosine;
  double peak_lr = 5e-4;
  double min_lr = 1e-6;      ///< reached at the last step (cosine, WSD)
  int64_t warmup_steps = 0;  ///< linear ramp from peak/warmup to peak
  int64_t total_steps = 1;
  double decay_fraction = 0.2;                  ///< WSD: the last fraction of steps decays to min_lr
  DecayShape decay_shape = DecayShape::Linear;  ///< WSD: the form of that decay

  /// Learning rate for 0-based `step` (the rate used by the update of that step).
  double at(int64_t step) const;
};

}  // namespace hnas::train
