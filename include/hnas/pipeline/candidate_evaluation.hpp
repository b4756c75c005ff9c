// SPDX-License-Identifier: Apache-2.0
// One search evaluation: train a candidate at a fidelity on the configured objective (MAD
// tasks or token data), data-parallel over its team, and summarise it as a
// CandidateResult. Divergence and exceptions inside training are data (status diverged /
// failed), not errors.
#pragma once

#include <functional>
#include <string>

#include "hnas/cli/options.hpp"
#include "hnas/pipeline/search_record.hpp"

namespace hnas::dist {
class GradientReducer;
}

namespace hnas::pipeline {

/// Fault injection for tests of the failure policy ([debug] keys).
struct FaultInjection {
  std::string diverge_arch;  ///< this architecture trains at lr 1e30 and diverges
  std::string fail_arch;     ///< this architecture throws inside its evaluation
};

/// What a team is asked to evaluate.
struct EvaluationRequest {
  int64_t candidate_id = -1;
  search::Proposal proposal;
  double fidelity = 1;  ///< MAD epochs and token steps are scaled by this (at least 1)
  int32_t team = 0;
};

/// Trains and scores the request's architecture. Collective over `team`'s ranks when
/// `team` is given (each rank gets the same result; rank 0's is the one to report), else
/// rank-local. `should_stop` is polled at every step; a stopped evaluation has status
/// "stopped" and must be re-run.
CandidateResult evaluate_candidate(const cli::EvaluateOptions& base, const EvaluationRequest& request,
                                   dist::GradientReducer* team, const std::function<bool()>& should_stop,
                                   const FaultInjection& faults);

/// Names of the MAD tasks `base` evaluates (the result's task_scores order); empty for tokens.
std::vector<std::string> objective_task_names(const cli::EvaluateOptions& base);

/// Estimated wall seconds of one full-fidelity evaluation at `flops_per_second`, from the
/// training FLOPs of an architecture with half attention layers (for the exhaustive
/// strategy's refusal message; an estimate, not a promise).
double estimate_evaluation_seconds(const cli::EvaluateOptions& base, int64_t num_layers, double flops_per_second);

}  // namespace hnas::pipeline
