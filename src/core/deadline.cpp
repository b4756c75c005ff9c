// SPDX-License-Identifier: Apache-2.0
#include "hnas/core/deadline.hpp"

#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <regex>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"

namespace hnas {
namespace {

// Nanoseconds since the Unix epoch of the deadline less the margin; 0: none.
std::atomic<int64_t> g_stop_at_ns{0};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

WallTime from_seconds(double seconds) {
  return WallTime(std::chrono::duration_cast<WallTime::duration>(std::chrono::duration<double>(seconds)));
}

// "2026-12-03T18:00[:00][Z|+HH:MM|-HHMM]"; nullopt when `text` is not of this form.
std::optional<WallTime> parse_absolute(const std::string& text, const std::string& what) {
  static const std::regex form(R"((\d{4})-(\d{2})-(\d{2})[T ](\d{1,2}):(\d{2})(?::(\d{2}))?(Z|[+-]\d{2}:?\d{2})?)");
  std::smatch m;
  if (!std::regex_match(text, m, form)) return std::nullopt;
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  tm.tm_hour = std::stoi(m[4]);
  tm.tm_min = std::stoi(m[5]);
  tm.tm_sec = m[6].matched ? std::stoi(m[6]) : 0;
  HNAS_CHECK(
      tm.tm_mon < 12 && tm.tm_mday >= 1 && tm.tm_mday <= 31 && tm.tm_hour < 24 && tm.tm_min < 60 && tm.tm_sec < 60,
      ConfigError, what << " = " << text << " is not a valid date and time");
  std::time_t t;
  if (!m[7].matched) {
    tm.tm_isdst = -1;  // local time, daylight saving as the calendar says
    t = std::mktime(&tm);
  } else {
    t = timegm(&tm);
    const std::string zone = m[7];
    if (zone != "Z") {
      const std::string digits = std::regex_replace(zone.substr(1), std::regex(":"), "");
      const int offset = std::stoi(digits.substr(0, 2)) * 3600 + std::stoi(digits.substr(2)) * 60;
      t -= zone[0] == '+' ? offset : -offset;
    }
  }
  return std::chrono::system_clock::from_time_t(t);
}

// Seconds of "3600", "90m", "1.5h", "2d", "1:30:00" or "1-12:00:00"; nullopt otherwise.
std::optional<double> parse_duration(const std::string& text) {
  static const std::regex with_unit(R"((\d+(?:\.\d+)?)([smhd]?))");
  static const std::regex clock(R"((?:(\d+)-)?(\d+):(\d{2}):(\d{2}))");
  std::smatch m;
  if (std::regex_match(text, m, with_unit)) {
    const double value = std::stod(m[1]);
    const std::string unit = m[2];
    return value * (unit == "m" ? 60 : unit == "h" ? 3600 : unit == "d" ? 86400 : 1);
  }
  if (std::regex_match(text, m, clock)) {
    if (std::stoi(m[3]) >= 60 || std::stoi(m[4]) >= 60) return std::nullopt;
    return (m[1].matched ? std::stod(m[1]) * 86400 : 0) + std::stod(m[2]) * 3600 + std::stod(m[3]) * 60 +
           std::stod(m[4]);
  }
  return std::nullopt;
}

}  // namespace

WallTime parse_deadline(const std::string& text, WallTime now, const std::string& what) {
  WallTime deadline;
  if (text.size() > 1 && text[0] == '@' && text.find_first_not_of("0123456789", 1) == std::string::npos) {
    deadline = from_seconds(std::stod(text.substr(1)));
  } else if (const auto absolute = parse_absolute(text, what)) {
    deadline = *absolute;
  } else if (const auto seconds = parse_duration(text)) {
    HNAS_CHECK(*seconds > 0, ConfigError, what << " = " << text << " is no time at all; give a duration above 0");
    deadline = now + std::chrono::duration_cast<WallTime::duration>(std::chrono::duration<double>(*seconds));
  } else {
    throw ConfigError(what + " = " + text +
                      " is neither a time (2026-12-03T18:00:00, with Z or +01:00 for another zone than the local "
                      "one, or @UNIX_SECONDS) nor a duration (3600, 90m, 1.5h, 2d, 1:30:00 or 1-12:00:00)");
  }
  HNAS_CHECK(deadline > now, ConfigError,
             what << " = " << text << " is already past (" << format_wall_time(deadline) << ", now "
                  << format_wall_time(now) << ")");
  return deadline;
}

std::optional<WallTime> slurm_job_end_time() {
  const char* value = std::getenv("SLURM_JOB_END_TIME");
  if (!value || !*value) return std::nullopt;
  char* end = nullptr;
  const long long seconds = std::strtoll(value, &end, 10);
  if (*end != '\0' || seconds <= 0) return std::nullopt;
  return std::chrono::system_clock::from_time_t(static_cast<std::time_t>(seconds));
}

void set_deadline(WallTime end, double margin_seconds) {
  const auto stop_at = end - std::chrono::duration_cast<WallTime::duration>(
                                 std::chrono::duration<double>(std::max(0.0, margin_seconds)));
  const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(stop_at.time_since_epoch()).count();
  g_stop_at_ns = ns == 0 ? 1 : ns;
}

void clear_deadline() { g_stop_at_ns = 0; }

bool has_deadline() { return g_stop_at_ns.load() != 0; }

double seconds_before_deadline() {
  const int64_t stop_at = g_stop_at_ns.load();
  if (stop_at == 0) return std::numeric_limits<double>::infinity();
  return static_cast<double>(stop_at - now_ns()) * 1e-9;
}

bool would_miss_deadline(double seconds) { return has_deadline() && seconds >= seconds_before_deadline(); }

bool deadline_passed() { return has_deadline() && seconds_before_deadline() <= 0; }

std::string format_wall_time(WallTime t) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm local{};
  localtime_r(&seconds, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

}  // namespace hnas
