#include <gtest/gtest.h>

#include "hnas/core/check.hpp"
#include "hnas/core/log.hpp"

namespace {

TEST(Log, format_and_durations) {
  EXPECT_EQ(hnas::log::format("step %d/%d", 3, 10), "step 3/10");
  EXPECT_EQ(hnas::log::format_duration(12.34), "12.3s");
  EXPECT_EQ(hnas::log::format_duration(125), "2m05s");
  EXPECT_EQ(hnas::log::format_duration(3 * 3600 + 120), "3h02m");
}

TEST(Check, throws_the_named_error_with_message) {
  try {
    HNAS_CHECK(1 == 2, ConfigError, "value " << 7 << " is bad");
    FAIL() << "no throw";
  } catch (const hnas::ConfigError& e) {
    EXPECT_STREQ(e.what(), "value 7 is bad");
    EXPECT_EQ(e.exit_code(), hnas::kExitConfig);
  }
  EXPECT_THROW(HNAS_ASSERT(false, "boom"), hnas::InternalError);
}

}  // namespace
