// SPDX-License-Identifier: Apache-2.0
// Search strategies: what to evaluate next. A strategy lives on rank 0 only; the
// scheduler asks it for proposals whenever a team is free and reports every outcome.
// Strategies are deterministic functions of their options and of the sequence of
// propose()/observe() calls made on them: replaying the recorded call sequence on a fresh
// strategy restores its state exactly (this is how a search resumes).
//
//   auto strategy = search::make_strategy(options);
//   while (!strategy->done()) {
//     if (auto p = strategy->propose()) run(*p);           // or wait for a result
//     ...
//     strategy->observe(p, {objective, /*valid=*/true});
//   }
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hnas/arch/genome.hpp"
#include "hnas/search/search_space.hpp"

namespace hnas::search {

/// One candidate evaluation to run.
struct Proposal {
  arch::Genome genome;
  int rung = 0;              ///< fidelity level (successive halving); 0 without it
  int stage = 0;             ///< incremental search stage; 0 otherwise
  std::string reason;        ///< why: "initial design", "log-EI", "exhaustive", "promoted", ...
  double acquisition = NAN;  ///< the acquisition value behind a BO proposal (log-EI), else NaN
};

/// The result of evaluating a proposal. Invalid outcomes (diverged, failed, out of
/// memory) carry NaN objectives; strategies must cope with them (BO imputes the worst
/// observed value).
struct Outcome {
  double objective = NAN;  ///< higher is better
  bool valid = false;
};

enum class StrategyKind { Exhaustive, Random, Bayesian, EndIncremental, MiddleIncremental };
const char* strategy_name(StrategyKind kind);
/// "exhaustive", "random", "bo", "end_incremental", "middle_incremental"; nullopt otherwise.
std::optional<StrategyKind> parse_strategy(const std::string& name);

struct BayesianOptions {
  int64_t initial_points = 0;        ///< quasi-random design before the GP (0: max(5, 2n), at most half the budget)
  int64_t random_pool = 20000;       ///< candidates scored per proposal when the space is > 2^16
  int64_t local_search_starts = 10;  ///< best random-pool points refined by single-layer mutations
  int64_t refit_every = 1;           ///< proposals between hyperparameter fits (each warm-starts; reused between)
};

struct SuccessiveHalvingOptions {
  int rungs = 1;     ///< fidelity levels; 1 disables successive halving
  double eta = 3.0;  ///< reduction factor: rung r+1 gets the top 1/eta of rung r, at eta x the budget
};

struct StrategyOptions {
  StrategyKind kind = StrategyKind::Bayesian;
  SearchSpaceOptions space;
  int64_t target_layers = 0;     ///< incremental searches: final depth N (a multiple of space.num_layers)
  int64_t max_evaluations = 64;  ///< new architectures proposed (rung-0 evaluations), all stages together
  uint64_t seed = 0;
  BayesianOptions bayesian;
  SuccessiveHalvingOptions halving;
  /// Expected seconds per full-fidelity evaluation (0: unknown); used only to make the
  /// exhaustive strategy's refusal message concrete.
  double seconds_per_evaluation = 0;
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  /// The next evaluation, or nullopt when nothing can be proposed now: either done(), or
  /// every remaining decision waits on pending results (e.g. the end of an incremental
  /// stage or of an ASHA rung). Each proposal is pending until observed.
  virtual std::optional<Proposal> propose() = 0;
  /// The outcome of an earlier, pending proposal (same genome, rung and stage).
  /// Throws InternalError for a proposal that is not pending.
  virtual void observe(const Proposal& proposal, const Outcome& outcome) = 0;
  /// No proposal will ever come again and none is pending.
  virtual bool done() const = 0;
  /// Training budget of `rung` as a fraction of full fidelity (1 for the top rung).
  virtual double fidelity(int rung) const { return 1.0; }
  /// Human-readable state for the log, e.g. "stage 2/3, 14 observed".
  virtual std::string describe() const = 0;
};

/// Builds the strategy (wrapped in successive halving when halving.rungs > 1).
/// Throws ConfigError for inconsistent options, e.g. an exhaustive space larger than
/// max_evaluations (the message gives the space size and, with seconds_per_evaluation,
/// an estimate of the time an exhaustive search would take), or target_layers not a
/// multiple of num_layers.
std::unique_ptr<Strategy> make_strategy(const StrategyOptions& options);

}  // namespace hnas::search
