// SPDX-License-Identifier: Apache-2.0
// N_c clustering, the Aggregator's second step (paper-digest section 5): the architecture
// is chosen layer by layer as the majority primitive among the top candidates whose c
// previous layers equal the layers already chosen. Pure functions: any rank or thread.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "hnas/arch/genome.hpp"
#include "hnas/arch/primitive.hpp"

namespace hnas::aggregate {

/// One candidate of the top cluster.
struct Member {
  int64_t candidate_id = -1;
  arch::Genome genome;
  double objective = 0;  ///< higher is better
};

/// c for N_all: condition on the whole chosen prefix.
inline constexpr int kContextAll = -1;

/// How layer i was chosen.
struct LayerVote {
  arch::Primitive chosen = arch::Primitive::Attention;
  int context_requested = 0;  ///< min(c, i): the prefix length asked for
  int context_used = 0;       ///< after back-off: the longest prefix (<= requested) some member matches
  int64_t voters = 0;         ///< members matching that prefix
  std::array<int64_t, arch::kNumPrimitives> votes{};          ///< per primitive (registry order)
  std::array<double, arch::kNumPrimitives> mean_objective{};  ///< of each primitive's voters (NaN: none)
  bool tie = false;  ///< the largest count was shared: broken by mean objective, then registry order
};

struct Consensus {
  arch::Genome genome;
  std::vector<LayerVote> layers;
};

/// N_c over `members` (all of one length): for each layer i, the members whose layers
/// i-c..i-1 equal the chosen ones vote; when none does, c is lowered one at a time (c = 0
/// always has every member). With one member set for all layers the back-off cannot
/// trigger (a chosen layer always has a voter, which matches the next prefix too), so
/// context_used equals context_requested; it is kept so that the rule stays total. The winner is the primitive with the
/// most votes; a tie goes to the higher mean objective of its voters, then to the primitive registered first (A before
/// M). `context` >= 0, or kContextAll. Throws InternalError for no members or members of different lengths (callers
/// check).
Consensus layerwise_consensus(const std::vector<Member>& members, int context);

/// The member with the highest objective; ties go to the lowest candidate id.
const Member& best_member(const std::vector<Member>& members);

/// Fraction of `genome`'s layers that are attention.
double attention_fraction(const arch::Genome& genome);

}  // namespace hnas::aggregate
