// SPDX-License-Identifier: Apache-2.0
#include "hnas/core/deadline.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

#include "hnas/core/error.hpp"
#include "hnas/core/signals.hpp"

namespace hnas {
namespace {

using std::chrono::seconds;

// 2026-12-03 12:00:00 UTC.
const WallTime kNow = std::chrono::system_clock::from_time_t(1796299200);

double seconds_after_now(const std::string& text) {
  return std::chrono::duration<double>(parse_deadline(text, kNow) - kNow).count();
}

TEST(Deadline, DurationsCountFromNow) {
  EXPECT_DOUBLE_EQ(seconds_after_now("3600"), 3600);
  EXPECT_DOUBLE_EQ(seconds_after_now("45s"), 45);
  EXPECT_DOUBLE_EQ(seconds_after_now("90m"), 5400);
  EXPECT_DOUBLE_EQ(seconds_after_now("1.5h"), 5400);
  EXPECT_DOUBLE_EQ(seconds_after_now("2d"), 172800);
  EXPECT_DOUBLE_EQ(seconds_after_now("1:30:00"), 5400);       // a PBS walltime
  EXPECT_DOUBLE_EQ(seconds_after_now("48:00:00"), 172800);    // hours beyond a day
  EXPECT_DOUBLE_EQ(seconds_after_now("1-12:00:05"), 129605);  // a SLURM time limit
}

TEST(Deadline, AbsoluteTimesInZonesAndUnixSeconds) {
  EXPECT_DOUBLE_EQ(seconds_after_now("2026-12-03T13:00:00Z"), 3600);
  EXPECT_DOUBLE_EQ(seconds_after_now("2026-12-03T13:00Z"), 3600);
  EXPECT_DOUBLE_EQ(seconds_after_now("2026-12-03T14:00:00+01:00"), 3600);
  EXPECT_DOUBLE_EQ(seconds_after_now("2026-12-03T08:00:00-0500"), 3600);
  EXPECT_DOUBLE_EQ(seconds_after_now("2026-12-03 12:00:30Z"), 30);
  EXPECT_DOUBLE_EQ(seconds_after_now("@1796302800"), 3600);
}

TEST(Deadline, LocalTimeIsTheDefaultZone) {
  const char* saved = std::getenv("TZ");
  const std::string previous = saved ? saved : "";
  setenv("TZ", "UTC-2", 1);  // POSIX: two hours east of UTC
  tzset();
  const double local = seconds_after_now("2026-12-03T15:00:00");
  if (saved)
    setenv("TZ", previous.c_str(), 1);
  else
    unsetenv("TZ");
  tzset();
  EXPECT_DOUBLE_EQ(local, 3600);
}

TEST(Deadline, RefusesWhatIsNotATimeNamingTheOption) {
  for (const char* bad :
       {"", "tomorrow", "10:00", "1:75:00", "2026-13-03T10:00:00", "2026-12-03", "-5m", "1h30", "@", "0", "0s"}) {
    try {
      parse_deadline(bad, kNow);
      FAIL() << "accepted \"" << bad << "\"";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("--deadline"), std::string::npos) << e.what();
    }
  }
}

TEST(Deadline, RefusesATimeAlreadyPast) {
  try {
    parse_deadline("2026-12-03T11:00:00Z", kNow);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("already past"), std::string::npos) << e.what();
  }
}

TEST(Deadline, ReadsTheSlurmJobEnd) {
  setenv("SLURM_JOB_END_TIME", "1796302800", 1);
  const auto end = slurm_job_end_time();
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*end), 1796302800);
  setenv("SLURM_JOB_END_TIME", "soon", 1);
  EXPECT_FALSE(slurm_job_end_time().has_value());
  unsetenv("SLURM_JOB_END_TIME");
  EXPECT_FALSE(slurm_job_end_time().has_value());
}

TEST(Deadline, StopsWorkThatWouldEndInsideTheMargin) {
  clear_deadline();
  reset_stop_request();
  EXPECT_FALSE(would_miss_deadline(1e9));
  EXPECT_FALSE(stop_requested());
  set_deadline(std::chrono::system_clock::now() + seconds(100), 30);  // 70 s of work left
  EXPECT_NEAR(seconds_before_deadline(), 70, 1);
  EXPECT_FALSE(would_miss_deadline(60));
  EXPECT_TRUE(would_miss_deadline(80));
  EXPECT_FALSE(deadline_passed());
  EXPECT_FALSE(stop_requested());
  set_deadline(std::chrono::system_clock::now() + seconds(20), 30);  // inside the margin already
  EXPECT_TRUE(deadline_passed());
  EXPECT_TRUE(stop_requested());  // every loop that polls for signals stops
  clear_deadline();
  EXPECT_FALSE(stop_requested());
}

}  // namespace
}  // namespace hnas
