// SPDX-License-Identifier: Apache-2.0
#include "hnas/aggregate/clustering.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"

namespace hnas::aggregate {
namespace {

// Weighted distinct values with prefix sums, so that the cost of any interval is O(1).
class IntervalCosts {
 public:
  IntervalCosts(const std::vector<double>& x, const std::vector<double>& w) : w_(1, 0), wx_(1, 0), wxx_(1, 0) {
    for (size_t i = 0; i < x.size(); ++i) {
      w_.push_back(w_.back() + w[i]);
      wx_.push_back(wx_.back() + w[i] * x[i]);
      wxx_.push_back(wxx_.back() + w[i] * x[i] * x[i]);
    }
  }
  /// Sum of squared distances to the mean of the values [first, last] (0-based, inclusive).
  double operator()(size_t first, size_t last) const {
    const double w = w_[last + 1] - w_[first];
    const double wx = wx_[last + 1] - wx_[first];
    const double wxx = wxx_[last + 1] - wxx_[first];
    return std::max(0.0, wxx - wx * wx / w);  // rounding may dip below 0
  }

 private:
  std::vector<double> w_, wx_, wxx_;
};

constexpr double kInfinity = std::numeric_limits<double>::infinity();

// Row `k` of the DP: cost[i] = best cost of the first i+1 values in k+1 clusters, from
// the previous row. The optimal start of the last cluster never decreases with i, so the
// row is filled by divide and conquer over i with a shrinking range of starts.
void fill_row(const IntervalCosts& cost, const std::vector<double>& previous, std::vector<double>& row,
              std::vector<size_t>& start, size_t k, size_t lo, size_t hi, size_t start_lo, size_t start_hi) {
  if (lo > hi) return;
  const size_t mid = lo + (hi - lo) / 2;
  double best = kInfinity;
  size_t best_start = std::max(start_lo, k);
  for (size_t j = std::max(start_lo, k); j <= std::min(mid, start_hi); ++j) {
    const double c = previous[j - 1] + cost(j, mid);
    if (c < best) {  // strict: the first optimal start wins
      best = c;
      best_start = j;
    }
  }
  row[mid] = best;
  start[mid] = best_start;
  if (mid > lo) fill_row(cost, previous, row, start, k, lo, mid - 1, start_lo, best_start);
  fill_row(cost, previous, row, start, k, mid + 1, hi, best_start, start_hi);
}

}  // namespace

Clustering kmeans_1d(const std::vector<double>& values, int k) {
  HNAS_CHECK(k >= 1, ConfigError, "aggregate.clusters must be at least 1, got " << k);
  HNAS_ASSERT(!values.empty(), "kmeans_1d of no values");
  for (double v : values) HNAS_ASSERT(std::isfinite(v), "kmeans_1d of a non-finite value " << v);

  // Distinct values with their multiplicities; centred for accurate prefix sums.
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  double mean = 0;
  for (double v : sorted) mean += v / static_cast<double>(sorted.size());
  std::vector<double> distinct, x, w;
  for (double v : sorted) {
    if (!distinct.empty() && v == distinct.back()) {
      w.back() += 1;
    } else {
      distinct.push_back(v);
      x.push_back(v - mean);
      w.push_back(1);
    }
  }
  const size_t n = distinct.size();
  const size_t clusters = std::min(static_cast<size_t>(k), n);
  const IntervalCosts cost(x, w);

  // cost_rows[c][i]: best cost of values [0, i] in c+1 clusters; starts[c][i]: first value
  // of the last of those clusters.
  std::vector<std::vector<double>> cost_rows(clusters, std::vector<double>(n, kInfinity));
  std::vector<std::vector<size_t>> starts(clusters, std::vector<size_t>(n, 0));
  for (size_t i = 0; i < n; ++i) cost_rows[0][i] = cost(0, i);
  for (size_t c = 1; c < clusters; ++c)
    fill_row(cost, cost_rows[c - 1], cost_rows[c], starts[c], c, c, n - 1, c, n - 1);

  // Walk the boundaries back from the last value.
  std::vector<size_t> first(clusters);
  size_t last = n - 1;
  for (size_t c = clusters; c-- > 0;) {
    first[c] = c == 0 ? 0 : starts[c][last];
    if (c > 0) last = first[c] - 1;
  }
  Clustering result;
  result.within_sum_of_squares = cost_rows[clusters - 1][n - 1];
  for (size_t c = 0; c < clusters; ++c) {
    const size_t end = c + 1 < clusters ? first[c + 1] - 1 : n - 1;
    Cluster cluster;
    cluster.lower = distinct[first[c]];
    cluster.upper = distinct[end];
    double weight = 0, sum = 0;
    for (size_t i = first[c]; i <= end; ++i) {
      weight += w[i];
      sum += w[i] * distinct[i];
    }
    cluster.size = static_cast<int64_t>(weight);
    cluster.centroid = sum / weight;
    result.clusters.push_back(cluster);
  }
  for (double v : values) {
    int label = 0;
    while (v > result.clusters[static_cast<size_t>(label)].upper) ++label;
    result.label.push_back(label);
  }
  return result;
}

}  // namespace hnas::aggregate
