// SPDX-License-Identifier: Apache-2.0
// Internal factories of the concrete strategies; make_strategy (strategy.cpp) composes them.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "hnas/search/strategy.hpp"

namespace hnas::search::detail {

/// Proposals handed out and not yet observed, matched by genome, rung and stage.
class PendingProposals {
 public:
  void add(const Proposal& proposal) { add(proposal, proposal); }
  /// Stores `stored` (e.g. a wrapped strategy's own proposal) under the key of `proposal`.
  void add(const Proposal& proposal, Proposal stored);
  /// Removes and returns what add() stored for the proposal matching `proposal`;
  /// throws InternalError naming `owner` when none is pending.
  Proposal take(const Proposal& proposal, const char* owner);
  bool contains(const Proposal& proposal) const { return items_.count(key(proposal)) != 0; }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }

 private:
  using Key = std::tuple<std::string, int, int>;
  static Key key(const Proposal& p) { return {p.genome.to_string(), p.rung, p.stage}; }
  std::map<Key, Proposal> items_;
};

/// Every feasible candidate of `space`, in block-index order. Throws ConfigError when the
/// space holds more than `budget` candidates (message: size, budget, time estimate).
std::unique_ptr<Strategy> make_exhaustive(const SearchSpace& space, int64_t budget, double seconds_per_evaluation);

/// Uniform sampling without replacement of feasible candidates, `budget` of them (fewer if
/// the space is smaller).
std::unique_ptr<Strategy> make_random(const SearchSpace& space, int64_t budget, uint64_t seed);

/// One-shot Bayesian optimisation over `space` with `budget` evaluations.
std::unique_ptr<Strategy> make_bayesian(const SearchSpace& space, int64_t budget, uint64_t seed,
                                        const BayesianOptions& options);

/// End- or middle-layer incremental search (paper section 3.2) built from per-stage BO
/// (exhaustive for a stage whose feasible block space fits the stage budget).
std::unique_ptr<Strategy> make_incremental(const StrategyOptions& options);

/// Asynchronous successive halving around `base` (which proposes rung-0 candidates).
std::unique_ptr<Strategy> make_successive_halving(std::unique_ptr<Strategy> base,
                                                  const SuccessiveHalvingOptions& options);

}  // namespace hnas::search::detail
