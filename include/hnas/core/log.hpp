// SPDX-License-Identifier: Apache-2.0
// Plain-line logging for batch jobs: timestamped lines to stdout from the rank that
// prints progress (rank 0), warnings and errors to stderr tagged with the rank.
#pragma once

#include <string>

namespace hnas::log {

/// Sets this process's rank for tags and whether info lines print here. Rank-local;
/// call once at start-up (main). Defaults: rank 0, printing on.
void set_rank(int rank, bool prints_info);

/// Progress and results: one line on stdout with an ISO timestamp (only where enabled).
void info(const std::string& line);
/// To stderr on every rank, tagged "[rank N] warning:".
void warn(const std::string& line);
/// To stderr on every rank, tagged "[rank N] error:".
void error(const std::string& line);

/// The current time in UTC as ISO 8601 ("2026-12-01T21:00:00Z"), as log lines start.
std::string utc_timestamp();

/// printf-style formatting into a std::string.
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/// "1h02m", "3m05s", "12.3s": durations for ETA columns.
std::string format_duration(double seconds);

}  // namespace hnas::log
