// SPDX-License-Identifier: Apache-2.0
// The job's walltime deadline. PBS sends no warning before its walltime kill and SLURM's
// signal can come a minute early or late, so hnas keeps the end of its allocation itself:
// once the deadline less a margin has passed, stop_requested() is true (every loop that
// polls it stops as for a signal), and a loop that knows how long its next piece of work
// takes asks would_miss_deadline() before it starts it.
//
//   hnas::set_deadline(hnas::parse_deadline("2h", now), 60);  // RunContext, from --deadline
//   if (hnas::would_miss_deadline(step_seconds + checkpoint_seconds)) { /* checkpoint, exit 75 */ }
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace hnas {

using WallTime = std::chrono::system_clock::time_point;

/// Parses a deadline given as
///   an absolute time: "2026-12-03T18:00:00" or "2026-12-03 18:00" (local time, as squeue
///     prints it), with "Z" or "+01:00" for another zone, or "@1764784800" (Unix seconds);
///   a duration from `now`: "3600" or "3600s", "90m", "1.5h", "2d", "1:30:00" (H:MM:SS,
///     as a PBS walltime) or "1-12:00:00" (days-H:MM:SS, as a SLURM time limit).
/// Throws ConfigError naming `what` (e.g. "--deadline") for anything else or for a time
/// that is not after `now`. Pure: callable anywhere.
WallTime parse_deadline(const std::string& text, WallTime now, const std::string& what = "--deadline");

/// The end of the SLURM job this process runs in, from SLURM_JOB_END_TIME (Unix seconds),
/// or nullopt outside SLURM (or when it is unset or not a number). Rank-local.
std::optional<WallTime> slurm_job_end_time();

/// Sets this process's deadline and the margin (seconds) kept before it for the final
/// write. Rank-local: RunContext calls it on every rank with rank 0's values.
void set_deadline(WallTime end, double margin_seconds);
void clear_deadline();  ///< no deadline (tests, and the default)
bool has_deadline();

/// Seconds until the deadline less the margin (negative once it has passed; +infinity
/// without a deadline).
double seconds_before_deadline();

/// True when work taking `seconds` that starts now would end after the deadline less
/// the margin. False without a deadline. Thread-safe.
bool would_miss_deadline(double seconds);

/// True once the deadline less the margin has passed. Thread-safe.
bool deadline_passed();

/// "2026-12-03 18:00:00" in local time.
std::string format_wall_time(WallTime t);

}  // namespace hnas
