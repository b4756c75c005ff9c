// SPDX-License-Identifier: Apache-2.0
// One search evaluation: train a candidate at a fidelity on the configured objective (MAD
// tasks or token data), data-parallel over its team, and summarise it as a
// CandidateResult. Divergence and exceptions inside training are data (status diverged /
// failed), not errors.
#pragma once

#include <functional>
#include <string>

#include "hnas/search/search_record.hpp"
#include "hnas/train/evaluation.hpp"

namespace hnas::dist {
class GradientReducer;
}

namespace hnas::search {

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

/// Trains and scores the request's architecture. Collective over the team of
/// context.reducer when it is given (each rank gets the same result; rank 0's is the one
/// to report), else rank-local. context.should_stop is polled at every step; a stopped
/// evaluation has status Stopped and must be re-run.
CandidateResult evaluate_candidate(const train::EvaluationOptions& base, const EvaluationRequest& request,
                                   const train::TrainingContext& context, const FaultInjection& faults);

/// Names of the MAD tasks `base` evaluates (the result's task_scores order); empty for tokens.
std::vector<std::string> objective_task_names(const train::EvaluationOptions& base);

/// Estimated wall seconds of one full-fidelity evaluation at `flops_per_second`, from the
/// training FLOPs of an architecture with half attention layers (for the exhaustive
/// strategy's refusal message; an estimate, not a promise).
double estimate_evaluation_seconds(const train::EvaluationOptions& base, int64_t num_layers, double flops_per_second);

/// The training FLOPs behind that estimate: 3 x the forward's per token, over every
/// training token of the objective (each MAD setting's epochs x its lr/wd grid, or the
/// token objective's steps).
double estimate_evaluation_flops(const train::EvaluationOptions& base, int64_t num_layers);

}  // namespace hnas::search
