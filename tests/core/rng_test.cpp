#include <gtest/gtest.h>

#include <vector>

#include "hnas/core/rng.hpp"

namespace {

TEST(Rng, same_seed_gives_same_stream) {
  hnas::Rng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.next_u64();
    EXPECT_EQ(x, b.next_u64()) << "draw " << i;
    differs |= (x != c.next_u64());
  }
  EXPECT_TRUE(differs);
}

TEST(Rng, uniform_int_covers_range_evenly) {
  hnas::Rng rng(7);
  std::vector<int> counts(10, 0);
  const int draws = 100000;
  for (int i = 0; i < draws; ++i) {
    const auto v = rng.uniform_int(uint64_t{10});
    ASSERT_LT(v, 10u);
    ++counts[v];
  }
  for (int k = 0; k < 10; ++k) EXPECT_NEAR(counts[k], draws / 10, 500) << "value " << k;
  for (int i = 0; i < 1000; ++i) {
    const auto v = rng.uniform_int(int64_t{-3}, int64_t{4});
    EXPECT_GE(v, -3);
    EXPECT_LT(v, 4);
  }
}

TEST(Rng, forks_are_independent_and_deterministic) {
  hnas::Rng base(1);
  hnas::Rng f1 = base.fork(1), f1b = base.fork(1), f2 = base.fork(2);
  EXPECT_EQ(f1.next_u64(), f1b.next_u64());
  EXPECT_NE(base.fork(1).next_u64(), f2.next_u64());
  EXPECT_NE(hnas::derive_seed(5, "data"), hnas::derive_seed(5, "init"));
  EXPECT_EQ(hnas::derive_seed(5, "data"), hnas::derive_seed(5, "data"));
}

TEST(Rng, uniform_double_in_unit_interval) {
  hnas::Rng rng(3);
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    const double u = rng.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.02);
}

}  // namespace
