// SPDX-License-Identifier: Apache-2.0
// Rank statistics for comparing rankings of candidates, e.g. low- vs full-fidelity
// objectives or search-scale vs scaled-up results.
// Pure functions: callable from any rank or thread.
#pragma once

#include <vector>

namespace hnas::search {

/// 1-based ranks of `values` in ascending order; tied values share the mean of their
/// ranks ({10, 20, 20, 30} -> {1, 2.5, 2.5, 4}). NaN values get a NaN rank and are left
/// out of the ranking of the others.
std::vector<double> average_ranks(const std::vector<double>& values);

/// Spearman's rank correlation: the Pearson correlation of the average ranks. Pairs with
/// a NaN on either side are ignored. NaN when fewer than 2 pairs remain or either side is
/// constant. Throws InternalError when the sizes differ.
double spearman_correlation(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace hnas::search
