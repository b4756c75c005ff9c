// SPDX-License-Identifier: Apache-2.0
// Strategy names and the factory that validates the options and composes the strategies.
#include "hnas/search/strategy.hpp"

#include "hnas/core/check.hpp"
#include "strategies.hpp"

namespace hnas::search {

const char* strategy_name(StrategyKind kind) {
  switch (kind) {
    case StrategyKind::Exhaustive:
      return "exhaustive";
    case StrategyKind::Random:
      return "random";
    case StrategyKind::Bayesian:
      return "bo";
    case StrategyKind::EndIncremental:
      return "end_incremental";
    case StrategyKind::MiddleIncremental:
      return "middle_incremental";
  }
  return "unknown";
}

std::optional<StrategyKind> parse_strategy(const std::string& name) {
  for (StrategyKind kind : {StrategyKind::Exhaustive, StrategyKind::Random, StrategyKind::Bayesian,
                            StrategyKind::EndIncremental, StrategyKind::MiddleIncremental})
    if (name == strategy_name(kind)) return kind;
  return std::nullopt;
}

std::unique_ptr<Strategy> make_strategy(const StrategyOptions& options) {
  HNAS_CHECK(options.max_evaluations >= 1, ConfigError,
             "search.max_evaluations must be at least 1, got " << options.max_evaluations);
  const auto& halving = options.halving;
  HNAS_CHECK(halving.rungs >= 1 && halving.rungs <= 8, ConfigError,
             "search.asha_rungs must be in [1, 8], got " << halving.rungs);
  if (halving.rungs > 1)
    HNAS_CHECK(halving.eta > 1 && std::isfinite(halving.eta), ConfigError,
               "search.asha_eta must be greater than 1, got " << halving.eta);

  std::unique_ptr<Strategy> strategy;
  switch (options.kind) {
    case StrategyKind::Exhaustive:
      strategy =
          detail::make_exhaustive(SearchSpace(options.space), options.max_evaluations, options.seconds_per_evaluation);
      break;
    case StrategyKind::Random:
      strategy = detail::make_random(SearchSpace(options.space), options.max_evaluations, options.seed);
      break;
    case StrategyKind::Bayesian:
      strategy =
          detail::make_bayesian(SearchSpace(options.space), options.max_evaluations, options.seed, options.bayesian);
      break;
    case StrategyKind::EndIncremental:
    case StrategyKind::MiddleIncremental:
      strategy = detail::make_incremental(options);
      break;
  }
  HNAS_ASSERT(strategy != nullptr, "no strategy for kind " << static_cast<int>(options.kind));
  if (halving.rungs > 1) strategy = detail::make_successive_halving(std::move(strategy), halving);
  return strategy;
}

namespace detail {

void PendingProposals::add(const Proposal& proposal, Proposal stored) {
  const bool inserted = items_.emplace(key(proposal), std::move(stored)).second;
  HNAS_ASSERT(inserted, "proposed " << proposal.genome.to_string() << " (rung " << proposal.rung << ", stage "
                                    << proposal.stage << ") while it is pending");
}

Proposal PendingProposals::take(const Proposal& proposal, const char* owner) {
  const auto it = items_.find(key(proposal));
  HNAS_CHECK(it != items_.end(), InternalError,
             owner << ": observe() of " << proposal.genome.to_string() << " (rung " << proposal.rung << ", stage "
                   << proposal.stage << "), which is not pending");
  Proposal stored = std::move(it->second);
  items_.erase(it);
  return stored;
}

}  // namespace detail
}  // namespace hnas::search
