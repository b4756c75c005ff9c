// SPDX-License-Identifier: Apache-2.0
#include "hnas/aggregate/clustering.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "hnas/core/error.hpp"

namespace {

using hnas::aggregate::Cluster;
using hnas::aggregate::Clustering;
using hnas::aggregate::kmeans_1d;

// Sum of squared distances of `values` to their mean, computed directly (two passes).
double sum_of_squares(const std::vector<double>& values) {
  if (values.empty()) return 0;
  double mean = 0;
  for (double v : values) mean += v;
  mean /= static_cast<double>(values.size());
  double s = 0;
  for (double v : values) s += (v - mean) * (v - mean);
  return s;
}

// The within-cluster sum of squares of the partition that `result.label` describes,
// recomputed from the inputs (independent of the library's prefix sums).
double sum_of_squares_of_labels(const std::vector<double>& values, const Clustering& result) {
  std::vector<std::vector<double>> groups(result.clusters.size());
  for (size_t i = 0; i < values.size(); ++i) groups[static_cast<size_t>(result.label[i])].push_back(values[i]);
  double total = 0;
  for (const auto& g : groups) total += sum_of_squares(g);
  return total;
}

// Every cluster's fields agree with the inputs its labels give it; clusters are ordered
// and disjoint; equal values share a label.
void expect_consistent(const std::vector<double>& values, const Clustering& result) {
  ASSERT_EQ(result.label.size(), values.size());
  std::vector<std::vector<double>> groups(result.clusters.size());
  for (size_t i = 0; i < values.size(); ++i) {
    ASSERT_GE(result.label[i], 0);
    ASSERT_LT(static_cast<size_t>(result.label[i]), result.clusters.size());
    groups[static_cast<size_t>(result.label[i])].push_back(values[i]);
  }
  for (size_t c = 0; c < result.clusters.size(); ++c) {
    const Cluster& cluster = result.clusters[c];
    ASSERT_FALSE(groups[c].empty()) << "cluster " << c << " has no member";
    EXPECT_EQ(cluster.size, static_cast<int64_t>(groups[c].size())) << "cluster " << c;
    EXPECT_EQ(cluster.lower, *std::min_element(groups[c].begin(), groups[c].end())) << "cluster " << c;
    EXPECT_EQ(cluster.upper, *std::max_element(groups[c].begin(), groups[c].end())) << "cluster " << c;
    double mean = 0;
    for (double v : groups[c]) mean += v;
    mean /= static_cast<double>(groups[c].size());
    EXPECT_NEAR(cluster.centroid, mean, 1e-12 * std::max(1.0, std::fabs(mean))) << "cluster " << c;
    if (c > 0) {
      EXPECT_LT(result.clusters[c - 1].upper, cluster.lower) << "clusters " << c - 1 << " and " << c;
    }
  }
  for (size_t i = 0; i < values.size(); ++i) {
    for (size_t j = 0; j < values.size(); ++j) {
      if (values[i] == values[j]) {
        EXPECT_EQ(result.label[i], result.label[j]) << "equal values " << values[i];
      }
    }
  }
}

void expect_same(const Clustering& a, const Clustering& b) {
  ASSERT_EQ(a.clusters.size(), b.clusters.size());
  for (size_t c = 0; c < a.clusters.size(); ++c) {
    EXPECT_EQ(a.clusters[c].lower, b.clusters[c].lower) << "cluster " << c;
    EXPECT_EQ(a.clusters[c].upper, b.clusters[c].upper) << "cluster " << c;
    EXPECT_EQ(a.clusters[c].centroid, b.clusters[c].centroid) << "cluster " << c;
    EXPECT_EQ(a.clusters[c].size, b.clusters[c].size) << "cluster " << c;
  }
  EXPECT_EQ(a.within_sum_of_squares, b.within_sum_of_squares);
}

// Minimum within-cluster sum of squares over every split of the sorted distinct values
// into exactly `clusters` contiguous non-empty runs (each distinct value with all its
// copies), by enumerating the clusters-1 cut positions among the distinct-1 gaps.
double brute_force_minimum(const std::vector<double>& values, size_t clusters) {
  std::map<double, int> counts;
  for (double v : values) ++counts[v];
  std::vector<double> distinct;
  std::vector<int> weight;
  for (const auto& [v, n] : counts) {
    distinct.push_back(v);
    weight.push_back(n);
  }
  const size_t gaps = distinct.size() - 1;
  double best = std::numeric_limits<double>::infinity();
  for (uint32_t mask = 0; mask < (1u << gaps); ++mask) {
    if (static_cast<size_t>(__builtin_popcount(mask)) != clusters - 1) continue;
    double total = 0;
    std::vector<double> group;
    for (size_t i = 0; i < distinct.size(); ++i) {
      for (int r = 0; r < weight[i]; ++r) group.push_back(distinct[i]);
      if (i == gaps || (mask >> i) & 1u) {  // a cut after distinct value i
        total += sum_of_squares(group);
        group.clear();
      }
    }
    best = std::min(best, total);
  }
  return best;
}

// Plain O(k n^2) dynamic programme over the sorted distinct values (with multiplicity):
// a reference for inputs too large to enumerate.
double reference_dp_minimum(const std::vector<double>& values, size_t clusters) {
  std::map<double, int> counts;
  for (double v : values) ++counts[v];
  std::vector<double> distinct;
  std::vector<int> weight;
  for (const auto& [v, n] : counts) {
    distinct.push_back(v);
    weight.push_back(n);
  }
  const size_t n = distinct.size();
  auto cost = [&](size_t first, size_t last) {  // inclusive
    std::vector<double> group;
    for (size_t i = first; i <= last; ++i)
      for (int r = 0; r < weight[i]; ++r) group.push_back(distinct[i]);
    return sum_of_squares(group);
  };
  const double inf = std::numeric_limits<double>::infinity();
  // best[c][i]: values [0, i) in c clusters.
  std::vector<std::vector<double>> best(clusters + 1, std::vector<double>(n + 1, inf));
  best[0][0] = 0;
  for (size_t c = 1; c <= clusters; ++c)
    for (size_t i = c; i <= n; ++i)
      for (size_t j = c - 1; j < i; ++j)
        if (best[c - 1][j] < inf) best[c][i] = std::min(best[c][i], best[c - 1][j] + cost(j, i - 1));
  return best[clusters][n];
}

size_t distinct_count(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return static_cast<size_t>(std::unique(values.begin(), values.end()) - values.begin());
}

TEST(Kmeans1d, two_obvious_groups_split_between_them) {
  const std::vector<double> values = {0.81, 0.10, 0.12, 0.80, 0.11};
  const auto r = kmeans_1d(values, 2);
  ASSERT_EQ(r.clusters.size(), 2u);
  EXPECT_EQ(r.clusters[0].lower, 0.10);
  EXPECT_EQ(r.clusters[0].upper, 0.12);
  EXPECT_EQ(r.clusters[0].size, 3);
  EXPECT_NEAR(r.clusters[0].centroid, 0.11, 1e-12);
  EXPECT_EQ(r.clusters[1].lower, 0.80);
  EXPECT_EQ(r.clusters[1].upper, 0.81);
  EXPECT_EQ(r.clusters[1].size, 2);
  EXPECT_NEAR(r.clusters[1].centroid, 0.805, 1e-12);
  // 0.01^2 + 0 + 0.01^2 + 0.005^2 + 0.005^2
  EXPECT_NEAR(r.within_sum_of_squares, 0.00025, 1e-12);
  EXPECT_EQ(r.label, (std::vector<int>{1, 0, 0, 1, 0}));
  expect_consistent(values, r);
}

TEST(Kmeans1d, three_groups_have_the_hand_computed_boundaries_centroids_and_cost) {
  // Sorted: 0 1 | 5 6 7 | 20.
  //   {0, 1}:    centroid 0.5, squares 0.25 + 0.25 = 0.5
  //   {5, 6, 7}: centroid 6,   squares 1 + 0 + 1    = 2
  //   {20}:      centroid 20,  squares 0
  //   total 2.5.
  // The next best three-way splits: {0} {1 5 6 7} {20}: mean 4.75, squares
  // 14.0625 + 0.0625 + 1.5625 + 5.0625 = 20.75; {0 1} {5 6} {7 20}: 0.5 + 0.5 + 84.5 = 85.5;
  // {0 1 5} {6 7} {20}: mean 2, 4 + 1 + 9 + 0.5 = 14.5. So 2.5 is the minimum.
  const std::vector<double> values = {6, 20, 0, 7, 1, 5};
  const auto r = kmeans_1d(values, 3);
  ASSERT_EQ(r.clusters.size(), 3u);
  EXPECT_EQ(r.clusters[0].lower, 0);
  EXPECT_EQ(r.clusters[0].upper, 1);
  EXPECT_DOUBLE_EQ(r.clusters[0].centroid, 0.5);
  EXPECT_EQ(r.clusters[0].size, 2);
  EXPECT_EQ(r.clusters[1].lower, 5);
  EXPECT_EQ(r.clusters[1].upper, 7);
  EXPECT_DOUBLE_EQ(r.clusters[1].centroid, 6);
  EXPECT_EQ(r.clusters[1].size, 3);
  EXPECT_EQ(r.clusters[2].lower, 20);
  EXPECT_EQ(r.clusters[2].upper, 20);
  EXPECT_DOUBLE_EQ(r.clusters[2].centroid, 20);
  EXPECT_EQ(r.clusters[2].size, 1);
  EXPECT_NEAR(r.within_sum_of_squares, 2.5, 1e-12);
  EXPECT_EQ(r.label, (std::vector<int>{1, 2, 0, 1, 0, 1}));
  expect_consistent(values, r);
}

TEST(Kmeans1d, accuracy_like_values_in_three_groups) {
  // Sorted: 0.20 0.22 | 0.50 0.52 0.54 | 0.90 0.90 0.93 0.95.
  //   {0.20, 0.22}:             centroid 0.21,   squares 2 * 0.01^2             = 0.0002
  //   {0.50, 0.52, 0.54}:       centroid 0.52,   squares 0.02^2 + 0 + 0.02^2    = 0.0008
  //   {0.90, 0.90, 0.93, 0.95}: centroid 0.92,   squares 0.0004 * 2 + 0.0001 + 0.0009 = 0.0018
  //   total 0.0028.
  const std::vector<double> values = {0.93, 0.50, 0.20, 0.90, 0.54, 0.95, 0.22, 0.52, 0.90};
  const auto r = kmeans_1d(values, 3);
  ASSERT_EQ(r.clusters.size(), 3u);
  EXPECT_EQ(r.clusters[0].lower, 0.20);
  EXPECT_EQ(r.clusters[0].upper, 0.22);
  EXPECT_EQ(r.clusters[0].size, 2);
  EXPECT_NEAR(r.clusters[0].centroid, 0.21, 1e-12);
  EXPECT_EQ(r.clusters[1].lower, 0.50);
  EXPECT_EQ(r.clusters[1].upper, 0.54);
  EXPECT_EQ(r.clusters[1].size, 3);
  EXPECT_NEAR(r.clusters[1].centroid, 0.52, 1e-12);
  EXPECT_EQ(r.clusters[2].lower, 0.90);
  EXPECT_EQ(r.clusters[2].upper, 0.95);
  EXPECT_EQ(r.clusters[2].size, 4);
  EXPECT_NEAR(r.clusters[2].centroid, 0.92, 1e-12);
  EXPECT_NEAR(r.within_sum_of_squares, 0.0028, 1e-12);
  EXPECT_EQ(r.label, (std::vector<int>{2, 1, 0, 2, 1, 2, 0, 1, 2}));
  expect_consistent(values, r);
}

TEST(Kmeans1d, more_clusters_than_distinct_values_gives_one_per_value) {
  const std::vector<double> values = {3, 1, 3, 2, 1, 3};
  const auto r = kmeans_1d(values, 5);
  ASSERT_EQ(r.clusters.size(), 3u);
  const int64_t sizes[] = {2, 1, 3};
  for (size_t c = 0; c < 3; ++c) {
    const double v = static_cast<double>(c + 1);
    EXPECT_EQ(r.clusters[c].lower, v);
    EXPECT_EQ(r.clusters[c].upper, v);
    EXPECT_EQ(r.clusters[c].centroid, v);
    EXPECT_EQ(r.clusters[c].size, sizes[c]);
  }
  EXPECT_EQ(r.within_sum_of_squares, 0);
  EXPECT_EQ(r.label, (std::vector<int>{2, 0, 2, 1, 0, 2}));
  // Exactly as many clusters as distinct values: the same answer.
  const auto exact = kmeans_1d(values, 3);
  expect_same(r, exact);
  EXPECT_EQ(exact.label, r.label);
}

TEST(Kmeans1d, equal_values_share_a_cluster) {
  // {1 1 1} {5 5 9}: 0 + (2 * (4/3)^2 + (8/3)^2) = 32/9 + 64/9 = 96/9 = 10.667
  // {1 1 1 5 5} {9}: mean 2.6: 3 * 1.6^2 + 2 * 2.4^2 = 7.68 + 11.52 = 19.2
  const std::vector<double> values = {5, 1, 9, 1, 5, 1};
  const auto r = kmeans_1d(values, 2);
  ASSERT_EQ(r.clusters.size(), 2u);
  EXPECT_EQ(r.clusters[0].lower, 1);
  EXPECT_EQ(r.clusters[0].upper, 1);
  EXPECT_EQ(r.clusters[0].size, 3);
  EXPECT_EQ(r.clusters[1].lower, 5);
  EXPECT_EQ(r.clusters[1].upper, 9);
  EXPECT_EQ(r.clusters[1].size, 3);
  EXPECT_NEAR(r.clusters[1].centroid, 19.0 / 3.0, 1e-12);
  EXPECT_NEAR(r.within_sum_of_squares, 96.0 / 9.0, 1e-12);
  EXPECT_EQ(r.label, (std::vector<int>{1, 0, 1, 0, 1, 0}));
  expect_consistent(values, r);
}

TEST(Kmeans1d, duplicates_are_not_split_to_fill_the_clusters) {
  // A clustering over sorted positions rather than distinct values would cut the runs of
  // equal values to reach k clusters (zero-cost, but two clusters with one centroid).
  const auto all_equal = kmeans_1d({7, 7, 7, 7}, 2);
  ASSERT_EQ(all_equal.clusters.size(), 1u);
  EXPECT_EQ(all_equal.clusters[0].size, 4);
  EXPECT_EQ(all_equal.clusters[0].centroid, 7);
  EXPECT_EQ(all_equal.within_sum_of_squares, 0);
  EXPECT_EQ(all_equal.label, (std::vector<int>{0, 0, 0, 0}));

  const std::vector<double> values = {10, 0, 0, 10, 0};
  const auto r = kmeans_1d(values, 4);
  ASSERT_EQ(r.clusters.size(), 2u);
  EXPECT_EQ(r.clusters[0].size, 3);
  EXPECT_EQ(r.clusters[1].size, 2);
  EXPECT_EQ(r.within_sum_of_squares, 0);
  EXPECT_EQ(r.label, (std::vector<int>{1, 0, 0, 1, 0}));

  // Six copies of 5 between 0 and 10: sending three copies each way would balance the
  // sizes (4 and 4), but the copies stay together. {0} {5 x6, 10}: mean 40/7, squares
  // 6 * (5/7)^2 + (30/7)^2 = 150/49 + 900/49 = 1050/49 = 21.43; {0, 5 x6} {10} is its
  // mirror, equally good, and the earlier boundary wins. (The balanced split {0 5 5 5}
  // {5 5 5 10} would cost 18.75 + 18.75 = 37.5.)
  const std::vector<double> middle = {5, 0, 5, 5, 10, 5, 5, 5};
  const auto m = kmeans_1d(middle, 2);
  ASSERT_EQ(m.clusters.size(), 2u);
  EXPECT_EQ(m.clusters[0].size, 1);
  EXPECT_EQ(m.clusters[1].size, 7);
  EXPECT_NEAR(m.within_sum_of_squares, 1050.0 / 49.0, 1e-9);
  expect_consistent(middle, m);
}

TEST(Kmeans1d, equally_good_clusterings_take_the_earlier_boundary) {
  // {0} {5 5 10} and {0 5 5} {10} both cost 2 * (5/3)^2 + (10/3)^2 = 150/9.
  for (const auto& values : {std::vector<double>{0, 5, 5, 10}, std::vector<double>{10, 5, 0, 5}}) {
    const auto r = kmeans_1d(values, 2);
    ASSERT_EQ(r.clusters.size(), 2u);
    EXPECT_EQ(r.clusters[0].upper, 0);
    EXPECT_EQ(r.clusters[0].size, 1);
    EXPECT_EQ(r.clusters[1].lower, 5);
    EXPECT_EQ(r.clusters[1].size, 3);
    EXPECT_NEAR(r.within_sum_of_squares, 150.0 / 9.0, 1e-9);
  }
}

TEST(Kmeans1d, a_single_candidate_is_its_own_cluster) {
  for (int k : {1, 5}) {
    const auto r = kmeans_1d({0.42}, k);
    ASSERT_EQ(r.clusters.size(), 1u) << "k " << k;
    EXPECT_EQ(r.clusters[0].lower, 0.42);
    EXPECT_EQ(r.clusters[0].upper, 0.42);
    EXPECT_EQ(r.clusters[0].centroid, 0.42);
    EXPECT_EQ(r.clusters[0].size, 1);
    EXPECT_EQ(r.within_sum_of_squares, 0);
    EXPECT_EQ(r.label, (std::vector<int>{0}));
  }
}

TEST(Kmeans1d, one_cluster_is_the_mean) {
  // Mean 18 / 6 = 3; squares 9 + 4 + 0 + 1 + 4 + 4 = 22.
  const std::vector<double> values = {6, 1, 3, 2, 1, 5};
  const auto r = kmeans_1d(values, 1);
  ASSERT_EQ(r.clusters.size(), 1u);
  EXPECT_EQ(r.clusters[0].lower, 1);
  EXPECT_EQ(r.clusters[0].upper, 6);
  EXPECT_DOUBLE_EQ(r.clusters[0].centroid, 3);
  EXPECT_EQ(r.clusters[0].size, 6);
  EXPECT_NEAR(r.within_sum_of_squares, 22, 1e-12);
  EXPECT_EQ(r.label, (std::vector<int>(6, 0)));
}

TEST(Kmeans1d, labels_follow_the_input_order_and_the_top_cluster_is_last) {
  const std::vector<double> values = {0.9, 0.1, 0.5, 0.91, 0.11, 0.52, 0.1};
  const auto r = kmeans_1d(values, 3);
  ASSERT_EQ(r.clusters.size(), 3u);
  EXPECT_EQ(r.label, (std::vector<int>{2, 0, 1, 2, 0, 1, 0}));
  for (size_t c = 1; c < r.clusters.size(); ++c) EXPECT_LT(r.clusters[c - 1].centroid, r.clusters[c].centroid);
  const Cluster& top = r.clusters.back();
  EXPECT_EQ(top.lower, 0.9);
  EXPECT_EQ(top.upper, 0.91);
  EXPECT_EQ(top.size, 2);
  // The top cluster's members are exactly the inputs labelled with the last index.
  for (size_t i = 0; i < values.size(); ++i)
    EXPECT_EQ(r.label[i] == 2, values[i] >= 0.9) << "input " << i << " = " << values[i];
  expect_consistent(values, r);
}

TEST(Kmeans1d, matches_brute_force_on_random_small_inputs) {
  std::mt19937 rng(20251001);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t n = 1 + rng() % 9;
    const int k = 1 + static_cast<int>(rng() % 4);
    // Few levels so that duplicates are common; scaled to look like accuracies.
    const uint32_t levels = 2 + rng() % 8;
    std::vector<double> values;
    for (size_t i = 0; i < n; ++i) values.push_back(0.3 + 0.07 * static_cast<double>(rng() % levels));
    const size_t clusters = std::min(static_cast<size_t>(k), distinct_count(values));
    const auto r = kmeans_1d(values, k);
    ASSERT_EQ(r.clusters.size(), clusters) << "trial " << trial;
    const double best = brute_force_minimum(values, clusters);
    const double tolerance = 1e-9 * std::max(best, 1e-6);
    EXPECT_NEAR(r.within_sum_of_squares, best, tolerance) << "trial " << trial << " k " << k;
    // The clusters it reports achieve that cost, not only the number.
    EXPECT_NEAR(sum_of_squares_of_labels(values, r), best, tolerance) << "trial " << trial << " k " << k;
    expect_consistent(values, r);
    if (HasFailure()) break;
  }
}

TEST(Kmeans1d, matches_a_quadratic_dp_on_larger_random_inputs) {
  // Enough distinct values for the divide and conquer over the last cluster's start to
  // recurse several levels.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 30; ++trial) {
    const size_t n = 20 + rng() % 60;
    const int k = 1 + static_cast<int>(rng() % 7);
    std::vector<double> values;
    for (size_t i = 0; i < n; ++i) values.push_back(static_cast<double>(rng() % 1000) / 1000.0);
    const size_t clusters = std::min(static_cast<size_t>(k), distinct_count(values));
    const auto r = kmeans_1d(values, k);
    ASSERT_EQ(r.clusters.size(), clusters) << "trial " << trial;
    const double best = reference_dp_minimum(values, clusters);
    const double tolerance = 1e-9 * std::max(best, 1e-6);
    EXPECT_NEAR(r.within_sum_of_squares, best, tolerance) << "trial " << trial << " k " << k;
    EXPECT_NEAR(sum_of_squares_of_labels(values, r), best, tolerance) << "trial " << trial << " k " << k;
    expect_consistent(values, r);
    if (HasFailure()) break;
  }
}

TEST(Kmeans1d, a_large_offset_does_not_change_the_clusters) {
  // Shifting every value by 1e6 leaves the optimal partition and its cost unchanged.
  const std::vector<double> base = {0.10, 0.12, 0.11, 0.40, 0.42, 0.80, 0.81, 0.79, 0.41};
  std::vector<double> shifted;
  for (double v : base) shifted.push_back(v + 1e6);
  const auto a = kmeans_1d(base, 3);
  const auto b = kmeans_1d(shifted, 3);
  ASSERT_EQ(a.clusters.size(), 3u);
  ASSERT_EQ(b.clusters.size(), 3u);
  EXPECT_EQ(a.label, b.label);
  EXPECT_EQ(a.label, (std::vector<int>{0, 0, 0, 1, 1, 2, 2, 2, 1}));
  for (size_t c = 0; c < 3; ++c) EXPECT_EQ(a.clusters[c].size, b.clusters[c].size);
  // Cost of the base: 3 groups of spacing 0.01 (0.0002 each) = 0.0006.
  EXPECT_NEAR(a.within_sum_of_squares, 0.0006, 1e-12);
  EXPECT_NEAR(b.within_sum_of_squares, 0.0006, 1e-6);
}

TEST(Kmeans1d, is_deterministic_and_independent_of_input_order) {
  const std::vector<double> values = {0.61, 0.35, 0.61, 0.92, 0.35, 0.48, 0.88, 0.70, 0.90, 0.35, 0.52};
  const auto first = kmeans_1d(values, 4);
  const auto second = kmeans_1d(values, 4);
  expect_same(first, second);
  EXPECT_EQ(first.label, second.label);

  std::vector<size_t> order(values.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937 rng(3);
  for (int trial = 0; trial < 10; ++trial) {
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<double> permuted;
    for (size_t i : order) permuted.push_back(values[i]);
    const auto r = kmeans_1d(permuted, 4);
    expect_same(first, r);
    ASSERT_EQ(r.label.size(), values.size());
    for (size_t j = 0; j < order.size(); ++j) EXPECT_EQ(r.label[j], first.label[order[j]]) << "trial " << trial;
  }
}

TEST(Kmeans1d, rejects_bad_k_and_bad_values) {
  EXPECT_THROW(kmeans_1d({1, 2, 3}, 0), hnas::ConfigError);
  EXPECT_THROW(kmeans_1d({1, 2, 3}, -3), hnas::ConfigError);
  EXPECT_THROW(kmeans_1d({}, 2), hnas::InternalError);
  EXPECT_THROW(kmeans_1d({1, std::nan(""), 3}, 2), hnas::InternalError);
  EXPECT_THROW(kmeans_1d({1, std::numeric_limits<double>::infinity()}, 2), hnas::InternalError);
  EXPECT_THROW(kmeans_1d({-std::numeric_limits<double>::infinity()}, 1), hnas::InternalError);
  // The k check comes first: a bad k is the user's error even with bad values.
  EXPECT_THROW(kmeans_1d({}, 0), hnas::ConfigError);
}

}  // namespace
