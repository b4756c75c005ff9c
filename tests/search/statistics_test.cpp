// SPDX-License-Identifier: Apache-2.0
#include "hnas/search/statistics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "hnas/core/error.hpp"

namespace {

using hnas::search::average_ranks;
using hnas::search::spearman_correlation;

TEST(AverageRanks, ties_share_the_mean_rank) {
  EXPECT_EQ(average_ranks({10, 20, 20, 30}), (std::vector<double>{1, 2.5, 2.5, 4}));
  EXPECT_EQ(average_ranks({3, 1, 2}), (std::vector<double>{3, 1, 2}));
  EXPECT_EQ(average_ranks({5, 5, 5}), (std::vector<double>{2, 2, 2}));
  EXPECT_EQ(average_ranks({2, 7, 2, 7, 2}), (std::vector<double>{2, 4.5, 2, 4.5, 2}));
  EXPECT_TRUE(average_ranks({}).empty());
}

TEST(AverageRanks, nan_is_left_out) {
  const auto ranks = average_ranks({4, NAN, 1, 4});
  ASSERT_EQ(ranks.size(), 4u);
  EXPECT_EQ(ranks[0], 2.5);
  EXPECT_TRUE(std::isnan(ranks[1]));
  EXPECT_EQ(ranks[2], 1);
  EXPECT_EQ(ranks[3], 2.5);
}

TEST(Spearman, perfect_monotone_relations) {
  const std::vector<double> x{0.1, 0.5, 0.2, 0.9, 0.3};
  std::vector<double> cube, negated;
  for (double v : x) {
    cube.push_back(v * v * v);
    negated.push_back(-std::exp(v));
  }
  EXPECT_DOUBLE_EQ(spearman_correlation(x, cube), 1.0);
  EXPECT_DOUBLE_EQ(spearman_correlation(x, negated), -1.0);
}

TEST(Spearman, matches_hand_computed_values_with_ties) {
  // Ranks of b: {1, 2, 3.5, 5, 3.5}; sum dx dy = 8, sum dx^2 = 10, sum dy^2 = 9.5 (scipy: 0.8207826816681233).
  EXPECT_NEAR(spearman_correlation({1, 2, 3, 4, 5}, {5, 6, 7, 8, 7}), 8 / std::sqrt(95.0), 1e-15);
  // Ties on both sides: ranks {1.5, 1.5, 3, 4} and {1, 2.5, 2.5, 4}: 3.75 / 4.5.
  EXPECT_NEAR(spearman_correlation({1, 1, 2, 3}, {1, 2, 2, 3}), 3.75 / 4.5, 1e-15);
  // No ties, from sum d^2: 1 - 6 * 4 / (5 * 24) = 0.8.
  EXPECT_NEAR(spearman_correlation({1, 2, 3, 4, 5}, {2, 1, 4, 3, 5}), 0.8, 1e-15);
}

TEST(Spearman, drops_nan_pairs) {
  // Remaining pairs (1, 1), (3, 2), (2, 3): ranks {1, 3, 2} and {1, 2, 3}: 1 / 2.
  EXPECT_NEAR(spearman_correlation({1, NAN, 3, 2}, {1, 5, 2, 3}), 0.5, 1e-15);
  EXPECT_NEAR(spearman_correlation({1, 4, 3, 2}, {1, NAN, 2, 3}), 0.5, 1e-15);
}

TEST(Spearman, undefined_cases) {
  EXPECT_TRUE(std::isnan(spearman_correlation({}, {})));
  EXPECT_TRUE(std::isnan(spearman_correlation({1}, {2})));
  EXPECT_TRUE(std::isnan(spearman_correlation({1, 2, 3}, {4, 4, 4})));
  EXPECT_TRUE(std::isnan(spearman_correlation({7, 7}, {1, 2})));
  EXPECT_TRUE(std::isnan(spearman_correlation({1, NAN, 2}, {1, 2, NAN})));  // one pair left
  EXPECT_THROW(spearman_correlation({1, 2}, {1, 2, 3}), hnas::InternalError);
}

}  // namespace
