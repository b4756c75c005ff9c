// SPDX-License-Identifier: Apache-2.0
#include "hnas/aggregate/consensus.hpp"

#include <cmath>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"

namespace hnas::aggregate {
namespace {

// Whether `genome`'s layers [i - c, i) equal `chosen`'s.
bool matches_prefix(const arch::Genome& genome, const std::vector<arch::Primitive>& chosen, size_t i, size_t c) {
  for (size_t j = i - c; j < i; ++j)
    if (genome[j] != chosen[j]) return false;
  return true;
}

}  // namespace

Consensus layerwise_consensus(const std::vector<Member>& members, int context) {
  HNAS_ASSERT(!members.empty(), "consensus of no members");
  const size_t n = members.front().genome.size();
  for (const auto& m : members) HNAS_ASSERT(m.genome.size() == n, "consensus of members of different lengths");
  HNAS_ASSERT(context >= 0 || context == kContextAll, "context " << context);

  Consensus result;
  std::vector<arch::Primitive> chosen;
  for (size_t i = 0; i < n; ++i) {
    LayerVote vote;
    vote.context_requested = static_cast<int>(context == kContextAll ? i : std::min<size_t>(i, context));
    std::array<double, arch::kNumPrimitives> objective_sum{};
    for (int c = vote.context_requested; c >= 0; --c) {
      vote.votes.fill(0);
      objective_sum.fill(0);
      vote.voters = 0;
      for (const auto& m : members) {
        if (!matches_prefix(m.genome, chosen, i, static_cast<size_t>(c))) continue;
        const auto p = static_cast<size_t>(m.genome[i]);
        ++vote.votes[p];
        objective_sum[p] += m.objective;
        ++vote.voters;
      }
      vote.context_used = c;
      if (vote.voters > 0) break;
    }
    size_t winner = 0;
    for (size_t p = 0; p < arch::kNumPrimitives; ++p) {
      vote.mean_objective[p] = vote.votes[p] > 0 ? objective_sum[p] / static_cast<double>(vote.votes[p]) : NAN;
      if (p == 0) continue;
      if (vote.votes[p] > vote.votes[winner]) {
        winner = p;
      } else if (vote.votes[p] == vote.votes[winner] && vote.votes[p] > 0 &&
                 vote.mean_objective[p] > vote.mean_objective[winner]) {
        winner = p;  // equal counts: the better-scoring voters win; equal scores keep the earlier primitive
      }
    }
    for (size_t p = 0; p < arch::kNumPrimitives; ++p)
      if (p != winner && vote.votes[p] == vote.votes[winner]) vote.tie = true;
    vote.chosen = static_cast<arch::Primitive>(winner);
    chosen.push_back(vote.chosen);
    result.layers.push_back(vote);
  }
  result.genome = arch::Genome(chosen);
  return result;
}

const Member& best_member(const std::vector<Member>& members) {
  HNAS_ASSERT(!members.empty(), "best of no members");
  const Member* best = &members.front();
  for (const auto& m : members)
    if (m.objective > best->objective || (m.objective == best->objective && m.candidate_id < best->candidate_id))
      best = &m;
  return *best;
}

double attention_fraction(const arch::Genome& genome) {
  return genome.empty()
             ? 0.0
             : static_cast<double>(genome.count(arch::Primitive::Attention)) / static_cast<double>(genome.size());
}

}  // namespace hnas::aggregate
