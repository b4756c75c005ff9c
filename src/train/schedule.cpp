// SPDX-License-Identifier: Apache-2.0
#include "hnas/train/schedule.hpp"

#include <algorithm>
#include <cmath>

#include "hnas/core/check.hpp"

namespace hnas::train {

ScheduleKind parse_schedule(const std::string& text, const std::string& key) {
  if (text == "constant") return ScheduleKind::Constant;
  if (text == "cosine") return ScheduleKind::Cosine;
  if (text == "wsd") return ScheduleKind::Wsd;
  throw ConfigError(key + " must be one of constant, cosine, wsd; got \"" + text + "\"");
}

const char* schedule_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::Constant:
      return "constant";
    case ScheduleKind::Cosine:
      return "cosine";
    case ScheduleKind::Wsd:
      return "wsd";
  }
  return "?";
}

double LrSchedule::at(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps)
    return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (kind == ScheduleKind::Constant) return peak_lr;
  const int64_t decay_span = std::max<int64_t>(1, total_steps - warmup_steps);
  const double progress = std::clamp(
      static_cast<double>(step - warmup_steps) / static_cast<double>(std::max<int64_t>(1, decay_span - 1)), 0.0, 1.0);
  if (kind == ScheduleKind::Cosine) return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
  // WSD: stable at the peak, then a cool-down over the last decay_fraction of all steps.
  const int64_t decay_steps = std::max<int64_t>(1, std::llround(decay_fraction * static_cast<double>(total_steps)));
  const int64_t decay_start = total_steps - decay_steps;
  if (step < decay_start) return peak_lr;
  const double t = std::clamp(static_cast<double>(step - decay_start + 1) / static_cast<double>(decay_steps), 0.0, 1.0);
  double remaining = 1.0 - t;  // the fraction of (peak - min) still applied
  if (decay_shape == DecayShape::Cosine) remaining = 0.5 * (1.0 + std::cos(M_PI * t));
  if (decay_shape == DecayShape::OneMinusSqrt) remaining = 1.0 - std::sqrt(t);
  return min_lr + (peak_lr - min_lr) * remaining;
}

}  // namespace hnas::train
