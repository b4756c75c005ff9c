// SPDX-License-Identifier: Apache-2.0
#include "hnas/aggregate/consensus.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "hnas/arch/genome.hpp"
#include "hnas/core/error.hpp"

namespace {

using hnas::aggregate::attention_fraction;
using hnas::aggregate::best_member;
using hnas::aggregate::Consensus;
using hnas::aggregate::kContextAll;
using hnas::aggregate::LayerVote;
using hnas::aggregate::layerwise_consensus;
using hnas::aggregate::Member;
using hnas::arch::Genome;
using hnas::arch::Primitive;

constexpr size_t kA = static_cast<size_t>(Primitive::Attention);
constexpr size_t kM = static_cast<size_t>(Primitive::Mlp);

Member member(int64_t id, const char* genome, double objective) {
  Member m;
  m.candidate_id = id;
  m.genome = Genome::parse(genome);
  m.objective = objective;
  return m;
}

// Checks one layer's vote: chosen letter, [A, M] counts, voters and contexts.
void expect_vote(const LayerVote& vote, char chosen, int64_t votes_a, int64_t votes_m, int requested, int used,
                 bool tie = false) {
  EXPECT_EQ(vote.chosen, chosen == 'A' ? Primitive::Attention : Primitive::Mlp);
  EXPECT_EQ(vote.votes[kA], votes_a);
  EXPECT_EQ(vote.votes[kM], votes_m);
  EXPECT_EQ(vote.voters, votes_a + votes_m);
  EXPECT_EQ(vote.context_requested, requested);
  EXPECT_EQ(vote.context_used, used);
  EXPECT_EQ(vote.tie, tie);
}

// The five-member, four-layer table of the N_0 test, objectives 1..5.
std::vector<Member> five_by_four() {
  return {member(10, "AMMA", 1), member(11, "AAMM", 2), member(12, "MAMA", 3), member(13, "AMAM", 4),
          member(14, "AMMA", 5)};
}

TEST(LayerwiseConsensus, n0_is_the_per_layer_majority) {
  // layer  m10 m11 m12 m13 m14   A votes (objectives)   M votes (objectives)   chosen
  //   0     A   A   M   A   A    4 (1 2 4 5: mean 3)    1 (3: mean 3)          A
  //   1     M   A   A   M   M    2 (2 3: mean 2.5)      3 (1 4 5: mean 10/3)   M
  //   2     M   M   M   A   M    1 (4: mean 4)          4 (1 2 3 5: mean 2.75) M
  //   3     A   M   A   M   A    3 (1 3 5: mean 3)      2 (2 4: mean 3)        A
  const auto r = layerwise_consensus(five_by_four(), 0);
  EXPECT_EQ(r.genome.to_string(), "AMMA");
  ASSERT_EQ(r.layers.size(), 4u);
  expect_vote(r.layers[0], 'A', 4, 1, 0, 0);
  expect_vote(r.layers[1], 'M', 2, 3, 0, 0);
  expect_vote(r.layers[2], 'M', 1, 4, 0, 0);
  expect_vote(r.layers[3], 'A', 3, 2, 0, 0);
  EXPECT_DOUBLE_EQ(r.layers[0].mean_objective[kA], 3);
  EXPECT_DOUBLE_EQ(r.layers[0].mean_objective[kM], 3);
  EXPECT_DOUBLE_EQ(r.layers[1].mean_objective[kA], 2.5);
  EXPECT_DOUBLE_EQ(r.layers[1].mean_objective[kM], 10.0 / 3.0);
  EXPECT_DOUBLE_EQ(r.layers[2].mean_objective[kA], 4);
  EXPECT_DOUBLE_EQ(r.layers[2].mean_objective[kM], 2.75);
  EXPECT_DOUBLE_EQ(r.layers[3].mean_objective[kA], 3);
  EXPECT_DOUBLE_EQ(r.layers[3].mean_objective[kM], 3);
}

TEST(LayerwiseConsensus, n1_conditions_on_the_chosen_previous_layer) {
  // layer  m0 m1 m2 m3 m4     N_0                N_1
  //   0    A  A  A  M  M      A 3 : M 2 -> A     (no previous layer) A
  //   1    A  A  M  M  M      A 2 : M 3 -> M     layer 0 = A: m0 m1 m2: A 2 : M 1 -> A
  //   2    M  M  M  M  A      A 1 : M 4 -> M     layer 1 = A: m0 m1:    A 0 : M 2 -> M
  const std::vector<Member> members = {member(0, "AAM", 1), member(1, "AAM", 2), member(2, "AMM", 3),
                                       member(3, "MMM", 4), member(4, "MMA", 5)};
  const auto n0 = layerwise_consensus(members, 0);
  EXPECT_EQ(n0.genome.to_string(), "AMM");
  expect_vote(n0.layers[1], 'M', 2, 3, 0, 0);

  const auto n1 = layerwise_consensus(members, 1);
  EXPECT_EQ(n1.genome.to_string(), "AAM");
  ASSERT_EQ(n1.layers.size(), 3u);
  expect_vote(n1.layers[0], 'A', 3, 2, 0, 0);
  expect_vote(n1.layers[1], 'A', 2, 1, 1, 1);
  expect_vote(n1.layers[2], 'M', 0, 2, 1, 1);
  EXPECT_DOUBLE_EQ(n1.layers[1].mean_objective[kA], 1.5);  // m0, m1
  EXPECT_DOUBLE_EQ(n1.layers[1].mean_objective[kM], 3);    // m2
  EXPECT_TRUE(std::isnan(n1.layers[2].mean_objective[kA]));
  EXPECT_DOUBLE_EQ(n1.layers[2].mean_objective[kM], 1.5);
}

TEST(LayerwiseConsensus, n_all_conditions_on_the_whole_prefix) {
  // layer  m0 m1 m2 m3 m4 m5 m6
  //   0    A  A  A  M  M  M  A    all 7: A 4 : M 3 -> A
  //   1    A  A  M  A  A  M  A    prefix A (m0 m1 m2 m6): A 3 : M 1 -> A
  //   2    A  A  M  M  M  M  M    N_all/N_2, prefix AA (m0 m1 m6): A 2 : M 1 -> A
  //                               N_1, layer 1 = A (m0 m1 m3 m4 m6): A 2 : M 3 -> M
  //   3    M  M  M  A  A  A  A    N_all, prefix AAA (m0 m1): M 2 -> M
  //                               N_2, layers 1-2 = AA (m0 m1): M 2 -> M
  //                               N_1, layer 2 = M (m2..m6): A 4 : M 1 -> A
  //                               N_0: A 4 : M 3 -> A
  const std::vector<Member> members = {member(0, "AAAM", 1), member(1, "AAAM", 2), member(2, "AMMM", 3),
                                       member(3, "MAMA", 4), member(4, "MAMA", 5), member(5, "MMMA", 6),
                                       member(6, "AAMA", 7)};
  const auto all = layerwise_consensus(members, kContextAll);
  EXPECT_EQ(all.genome.to_string(), "AAAM");
  ASSERT_EQ(all.layers.size(), 4u);
  expect_vote(all.layers[0], 'A', 4, 3, 0, 0);
  expect_vote(all.layers[1], 'A', 3, 1, 1, 1);
  expect_vote(all.layers[2], 'A', 2, 1, 2, 2);
  expect_vote(all.layers[3], 'M', 0, 2, 3, 3);

  const auto n2 = layerwise_consensus(members, 2);  // requested min(2, i)
  EXPECT_EQ(n2.genome.to_string(), "AAAM");
  expect_vote(n2.layers[0], 'A', 4, 3, 0, 0);
  expect_vote(n2.layers[1], 'A', 3, 1, 1, 1);
  expect_vote(n2.layers[2], 'A', 2, 1, 2, 2);
  expect_vote(n2.layers[3], 'M', 0, 2, 2, 2);

  const auto n1 = layerwise_consensus(members, 1);
  EXPECT_EQ(n1.genome.to_string(), "AAMA");
  expect_vote(n1.layers[2], 'M', 2, 3, 1, 1);
  expect_vote(n1.layers[3], 'A', 4, 1, 1, 1);

  // A context longer than the genome is N_all.
  const auto long_context = layerwise_consensus(members, 100);
  EXPECT_EQ(long_context.genome, all.genome);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(long_context.layers[i].context_requested, static_cast<int>(i));
}

TEST(LayerwiseConsensus, equal_counts_go_to_the_better_voters) {
  // layer 0: A (m0 0.5, m1 0.25: mean 0.375) vs M (m2 0.75, m3 0.25: mean 0.5) -> M
  // layer 1: M (m0, m1: mean 0.375) vs A (m2, m3: mean 0.5) -> A
  // Both ways round, so neither the letter nor the member order decides.
  const std::vector<Member> members = {member(0, "AM", 0.5), member(1, "AM", 0.25), member(2, "MA", 0.75),
                                       member(3, "MA", 0.25)};
  const auto r = layerwise_consensus(members, 0);
  EXPECT_EQ(r.genome.to_string(), "MA");
  expect_vote(r.layers[0], 'M', 2, 2, 0, 0, /*tie=*/true);
  expect_vote(r.layers[1], 'A', 2, 2, 0, 0, /*tie=*/true);
  EXPECT_DOUBLE_EQ(r.layers[0].mean_objective[kA], 0.375);
  EXPECT_DOUBLE_EQ(r.layers[0].mean_objective[kM], 0.5);

  // The same ties reached under N_1 (layer 1 conditioned on layer 0 = M leaves m2, m3: A 2).
  const auto n1 = layerwise_consensus(members, 1);
  EXPECT_EQ(n1.genome.to_string(), "MA");
  expect_vote(n1.layers[1], 'A', 2, 0, 1, 1, /*tie=*/false);
}

TEST(LayerwiseConsensus, equal_counts_and_means_go_to_the_first_registered_primitive) {
  // Either member order: A (registered first) wins every tied layer.
  for (const auto& members : {std::vector<Member>{member(0, "AM", 0.5), member(1, "MA", 0.5)},
                              std::vector<Member>{member(1, "MA", 0.5), member(0, "AM", 0.5)}}) {
    const auto r = layerwise_consensus(members, 0);
    EXPECT_EQ(r.genome.to_string(), "AA");
    expect_vote(r.layers[0], 'A', 1, 1, 0, 0, /*tie=*/true);
    expect_vote(r.layers[1], 'A', 1, 1, 0, 0, /*tie=*/true);
  }
  // Equal means from different objectives: M (0.25, 0.75) and A (0.5, 0.5) both 0.5.
  const std::vector<Member> tied = {member(0, "MA", 0.25), member(1, "MA", 0.75), member(2, "AM", 0.5),
                                    member(3, "AM", 0.5)};
  const auto t = layerwise_consensus(tied, 0);
  EXPECT_EQ(t.genome.to_string(), "AA");
  expect_vote(t.layers[0], 'A', 2, 2, 0, 0, /*tie=*/true);
  expect_vote(t.layers[1], 'A', 2, 2, 0, 0, /*tie=*/true);
}

TEST(LayerwiseConsensus, a_broad_cluster_can_vote_for_an_architecture_none_of_its_members_is) {
  // Each member has one or two attention layers, each in a different place: no layer has
  // more than two attention votes out of eight, so N_0 (and N_1) is all-MLP, with 0
  // attention where every member has 1/6 or 1/3. A known property of the per-layer vote
  // (the degenerate case of the issue), recorded here; N_all stays on a member.
  const std::vector<Member> members = {member(0, "AMMMMM", 0.60), member(1, "MAMMMM", 0.61), member(2, "MMAMMM", 0.62),
                                       member(3, "MMMAMM", 0.63), member(4, "MMMMAM", 0.64), member(5, "MMMMMA", 0.65),
                                       member(6, "AMMAMM", 0.62), member(7, "MAMMMA", 0.63)};
  const auto n0 = layerwise_consensus(members, 0);
  EXPECT_EQ(n0.genome.to_string(), "MMMMMM");
  const int64_t attention_votes[] = {2, 2, 1, 2, 1, 2};
  for (size_t i = 0; i < 6; ++i) expect_vote(n0.layers[i], 'M', attention_votes[i], 8 - attention_votes[i], 0, 0);
  EXPECT_EQ(attention_fraction(n0.genome), 0.0);
  double lowest = 1, highest = 0;
  for (const auto& m : members) {
    EXPECT_NE(m.genome, n0.genome);
    lowest = std::min(lowest, attention_fraction(m.genome));
    highest = std::max(highest, attention_fraction(m.genome));
  }
  EXPECT_DOUBLE_EQ(lowest, 1.0 / 6.0);
  EXPECT_DOUBLE_EQ(highest, 1.0 / 3.0);
  EXPECT_LT(attention_fraction(n0.genome), lowest);

  // N_1: layer i-1 = M leaves at most two attention voters at each layer.
  EXPECT_EQ(layerwise_consensus(members, 1).genome.to_string(), "MMMMMM");

  // N_all narrows to m5: prefix M (6 left), MM (m2..m5), MMM (m3 m4 m5), MMMM (m4 m5), then
  // layer 4 is a 1 : 1 tie between m4 (A, 0.64) and m5 (M, 0.65), won by M, and layer 5 is m5's A.
  const auto all = layerwise_consensus(members, kContextAll);
  EXPECT_EQ(all.genome.to_string(), "MMMMMA");
  expect_vote(all.layers[0], 'M', 2, 6, 0, 0);
  expect_vote(all.layers[1], 'M', 2, 4, 1, 1);
  expect_vote(all.layers[2], 'M', 1, 3, 2, 2);
  expect_vote(all.layers[3], 'M', 1, 2, 3, 3);
  expect_vote(all.layers[4], 'M', 1, 1, 4, 4, /*tie=*/true);
  expect_vote(all.layers[5], 'A', 1, 0, 5, 5);
}

TEST(LayerwiseConsensus, a_single_member_is_its_own_consensus) {
  const std::vector<Member> members = {member(9, "AMMA", 0.3)};
  for (int context : {0, 1, kContextAll}) {
    const auto r = layerwise_consensus(members, context);
    EXPECT_EQ(r.genome.to_string(), "AMMA") << "context " << context;
    ASSERT_EQ(r.layers.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      const auto& v = r.layers[i];
      const bool attention = members[0].genome[i] == Primitive::Attention;
      const int requested = context == kContextAll ? static_cast<int>(i) : std::min(static_cast<int>(i), context);
      expect_vote(v, attention ? 'A' : 'M', attention ? 1 : 0, attention ? 0 : 1, requested, requested);
      EXPECT_DOUBLE_EQ(v.mean_objective[attention ? kA : kM], 0.3);
      EXPECT_TRUE(std::isnan(v.mean_objective[attention ? kM : kA]));
    }
  }
}

TEST(LayerwiseConsensus, votes_follow_the_rule_on_random_members) {
  // For random clusters, every layer's vote is recomputed here from the members matching
  // the context actually used. Also: the requested context is always available (the
  // members that voted for the previous winner match it), so back-off never happens, and
  // N_all always ends on one of the members.
  std::mt19937 rng(5);
  const double objectives[] = {0.25, 0.5, 0.75, 1.0};
  for (int trial = 0; trial < 200; ++trial) {
    const size_t length = 1 + rng() % 7;
    const size_t count = 1 + rng() % 8;
    std::vector<Member> members;
    for (size_t m = 0; m < count; ++m) {
      std::string text;
      for (size_t i = 0; i < length; ++i) text += (rng() % 3 == 0) ? 'A' : 'M';
      members.push_back(member(static_cast<int64_t>(m), text.c_str(), objectives[rng() % 4]));
    }
    for (int context : {0, 1, 2, 3, kContextAll}) {
      const Consensus r = layerwise_consensus(members, context);
      ASSERT_EQ(r.genome.size(), length);
      ASSERT_EQ(r.layers.size(), length);
      for (size_t i = 0; i < length; ++i) {
        const LayerVote& v = r.layers[i];
        const int requested = context == kContextAll ? static_cast<int>(i) : std::min(static_cast<int>(i), context);
        ASSERT_EQ(v.context_requested, requested) << "trial " << trial << " context " << context << " layer " << i;
        ASSERT_EQ(v.context_used, requested) << "trial " << trial << " context " << context << " layer " << i;
        std::array<int64_t, 2> votes{};
        std::array<double, 2> sum{};
        for (const auto& m : members) {
          bool match = true;
          for (size_t j = i - static_cast<size_t>(v.context_used); j < i; ++j)
            match = match && m.genome[j] == r.genome[j];
          if (!match) continue;
          ++votes[static_cast<size_t>(m.genome[i])];
          sum[static_cast<size_t>(m.genome[i])] += m.objective;
        }
        ASSERT_EQ(v.votes[kA], votes[kA]) << "trial " << trial << " context " << context << " layer " << i;
        ASSERT_EQ(v.votes[kM], votes[kM]) << "trial " << trial << " context " << context << " layer " << i;
        ASSERT_EQ(v.voters, votes[kA] + votes[kM]);
        std::array<double, 2> mean{};
        for (size_t p = 0; p < 2; ++p) {
          mean[p] = votes[p] > 0 ? sum[p] / static_cast<double>(votes[p]) : NAN;
          if (votes[p] > 0) {
            EXPECT_DOUBLE_EQ(v.mean_objective[p], mean[p]);
          } else {
            EXPECT_TRUE(std::isnan(v.mean_objective[p]));
          }
        }
        Primitive expected = votes[kA] > votes[kM] ? Primitive::Attention : Primitive::Mlp;
        if (votes[kA] == votes[kM]) expected = mean[kM] > mean[kA] ? Primitive::Mlp : Primitive::Attention;
        ASSERT_EQ(v.chosen, expected) << "trial " << trial << " context " << context << " layer " << i;
        ASSERT_EQ(v.tie, votes[kA] == votes[kM]);
        ASSERT_EQ(r.genome[i], v.chosen);
      }
      if (context == kContextAll) {
        const bool is_a_member =
            std::any_of(members.begin(), members.end(), [&](const Member& m) { return m.genome == r.genome; });
        EXPECT_TRUE(is_a_member) << "trial " << trial << ": " << r.genome.to_string();
      }
    }
  }
}

TEST(LayerwiseConsensus, rejects_no_members_mixed_lengths_and_a_bad_context) {
  EXPECT_THROW(layerwise_consensus({}, 0), hnas::InternalError);
  EXPECT_THROW(layerwise_consensus({member(0, "AMMA", 1), member(1, "AMM", 2)}, 0), hnas::InternalError);
  EXPECT_THROW(layerwise_consensus({member(0, "AMMA", 1)}, -2), hnas::InternalError);
  EXPECT_NO_THROW(layerwise_consensus({member(0, "AMMA", 1)}, kContextAll));
}

TEST(BestMember, takes_the_highest_objective) {
  const std::vector<Member> members = {member(4, "AMMM", 0.5), member(2, "MAMM", 0.8), member(7, "MMAM", 0.7)};
  EXPECT_EQ(best_member(members).candidate_id, 2);
  EXPECT_EQ(&best_member(members), &members[1]);  // a reference into the vector
}

TEST(BestMember, ties_go_to_the_lowest_candidate_id) {
  // The lowest id comes last, and in the middle: not the first one seen.
  const std::vector<Member> last = {member(7, "AMMM", 0.9), member(5, "MAMM", 0.9), member(3, "MMAM", 0.9)};
  EXPECT_EQ(best_member(last).candidate_id, 3);
  const std::vector<Member> middle = {member(7, "AMMM", 0.9), member(1, "MAMM", 0.9), member(3, "MMAM", 0.9),
                                      member(0, "MMMA", 0.2)};
  EXPECT_EQ(best_member(middle).candidate_id, 1);
  const std::vector<Member> first = {member(2, "AMMM", 0.9), member(8, "MAMM", 0.9)};
  EXPECT_EQ(best_member(first).candidate_id, 2);
  EXPECT_EQ(best_member({member(6, "AM", 0.1)}).candidate_id, 6);
  EXPECT_THROW(best_member({}), hnas::InternalError);
}

TEST(AttentionFraction, counts_attention_layers) {
  EXPECT_DOUBLE_EQ(attention_fraction(Genome::parse("AMMA")), 0.5);
  EXPECT_DOUBLE_EQ(attention_fraction(Genome::parse("AMMMMM")), 1.0 / 6.0);
  EXPECT_EQ(attention_fraction(Genome::parse("A3")), 1.0);
  EXPECT_EQ(attention_fraction(Genome::parse("M4")), 0.0);
  EXPECT_EQ(attention_fraction(Genome()), 0.0);
}

}  // namespace
