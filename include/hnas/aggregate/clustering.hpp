// SPDX-License-Identifier: Apache-2.0
// The Aggregator's first step: the top candidates are the cluster with the highest
// centroid of a K-means clustering of their objectives. The data is one-dimensional, so
// the clustering is solved exactly (dynamic programming over the sorted values), with no
// random restarts: the same values always give the same clusters.
// Pure functions: callable from any rank or thread.
#pragma once

#include <cstdint>
#include <vector>

namespace hnas::aggregate {

/// One cluster: a contiguous interval of the sorted values.
struct Cluster {
  double lower = 0;     ///< smallest member value
  double upper = 0;     ///< largest member value
  double centroid = 0;  ///< mean of the member values
  int64_t size = 0;     ///< members (equal values counted each)
};

struct Clustering {
  std::vector<Cluster> clusters;  ///< in increasing order of value: the top cluster is the last
  std::vector<int> label;         ///< per input value, its cluster's index
  double within_sum_of_squares = 0;
};

/// Optimal K-means of `values` (minimum within-cluster sum of squared distances to the
/// centroids), exact. Equal values always share a cluster, so fewer distinct values than
/// `k` give one cluster per distinct value. Between equally good clusterings the choice is
/// deterministic (the earlier boundary). O(k n log n) for n distinct values.
/// Throws ConfigError when `k` < 1, InternalError when `values` is empty or not finite.
Clustering kmeans_1d(const std::vector<double>& values, int k);

}  // namespace hnas::aggregate
