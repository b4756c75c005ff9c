// SPDX-License-Identifier: Apache-2.0
#include "hnas/core/log.hpp"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <vector>

namespace hnas::log {
namespace {

struct LogState {
  int rank = 0;
  bool prints_info = true;
  std::mutex mutex;
};

LogState& state() {
  static LogState s;
  return s;
}

void emit(std::FILE* stream, const std::string& prefix, const std::string& line) {
  std::lock_guard<std::mutex> lock(state().mutex);
  std::fprintf(stream, "%s %s%s\n", utc_timestamp().c_str(), prefix.c_str(), line.c_str());
  std::fflush(stream);
}

}  // namespace

std::string utc_timestamp() {
  std::time_t now = std::time(nullptr);
  std::tm tm_utc{};
  gmtime_r(&now, &tm_utc);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm_utc);
  return buf;
}

void set_rank(int rank, bool prints_info) {
  state().rank = rank;
  state().prints_info = prints_info;
}

void info(const std::string& line) {
  if (state().prints_info) emit(stdout, "", line);
}

void warn(const std::string& line) { emit(stderr, format("[rank %d] warning: ", state().rank), line); }

void error(const std::string& line) { emit(stderr, format("[rank %d] error: ", state().rank), line); }

std::string format(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  va_list copy;
  va_copy(copy, args);
  const int needed = std::vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  std::vector<char> buf(static_cast<size_t>(needed > 0 ? needed : 0) + 1);
  std::vsnprintf(buf.data(), buf.size(), fmt, args);
  va_end(args);
  return std::string(buf.data(), static_cast<size_t>(needed > 0 ? needed : 0));
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds < 60) return format("%.1fs", seconds);
  const long total = std::lround(seconds);
  if (total < 3600) return format("%ldm%02lds", total / 60, total % 60);
  return format("%ldh%02ldm", total / 3600, (total % 3600) / 60);
}

}  // namespace hnas::log
