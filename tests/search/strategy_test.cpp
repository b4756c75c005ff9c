// SPDX-License-Identifier: Apache-2.0
#include "hnas/search/strategy.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "hnas/core/error.hpp"
#include "support/test_support.hpp"

namespace {

using hnas::arch::Genome;
using hnas::arch::Primitive;
using hnas::search::make_strategy;
using hnas::search::Outcome;
using hnas::search::Proposal;
using hnas::search::SearchSpace;
using hnas::search::Strategy;
using hnas::search::StrategyKind;
using hnas::search::StrategyOptions;
using hnas::testing::message_of;

StrategyOptions options(StrategyKind kind, int64_t num_layers, int64_t max_evaluations) {
  StrategyOptions o;
  o.kind = kind;
  o.space.num_layers = num_layers;
  o.max_evaluations = max_evaluations;
  return o;
}

Outcome valid(double objective) { return {objective, true}; }

// Number of "AM" pairs: a synthetic objective with a unique best at every depth.
double am_pairs(const Genome& g) {
  double n = 0;
  for (size_t i = 0; i + 1 < g.size(); ++i) n += g[i] == Primitive::Attention && g[i + 1] == Primitive::Mlp;
  return n;
}

// Proposes and observes one at a time until done; returns every proposal.
template <typename Objective>
std::vector<Proposal> run_sequentially(Strategy& s, Objective objective, size_t limit = 10000) {
  std::vector<Proposal> all;
  while (!s.done()) {
    auto p = s.propose();
    EXPECT_TRUE(p.has_value()) << "nothing to propose, nothing pending, but not done: " << s.describe();
    if (!p || all.size() == limit) break;
    all.push_back(*p);
    s.observe(*p, objective(*p));
  }
  return all;
}

TEST(StrategyKind, names_round_trip) {
  for (auto kind : {StrategyKind::Exhaustive, StrategyKind::Random, StrategyKind::Bayesian,
                    StrategyKind::EndIncremental, StrategyKind::MiddleIncremental})
    EXPECT_EQ(hnas::search::parse_strategy(hnas::search::strategy_name(kind)), kind);
  EXPECT_STREQ(hnas::search::strategy_name(StrategyKind::Bayesian), "bo");
  EXPECT_STREQ(hnas::search::strategy_name(StrategyKind::MiddleIncremental), "middle_incremental");
  EXPECT_EQ(hnas::search::parse_strategy("BO"), std::nullopt);
  EXPECT_EQ(hnas::search::parse_strategy("one_shot"), std::nullopt);
}

TEST(MakeStrategy, rejects_inconsistent_options_naming_the_key) {
  auto expect_rejected = [](const StrategyOptions& o, const std::string& fragment) {
    const std::string message = message_of<hnas::ConfigError>([&] { make_strategy(o); });
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
  };
  expect_rejected(options(StrategyKind::Random, 4, 0), "search.max_evaluations must be at least 1, got 0");
  auto o = options(StrategyKind::Random, 4, 8);
  o.halving.rungs = 0;
  expect_rejected(o, "search.asha_rungs must be in [1, 8], got 0");
  o.halving.rungs = 9;
  expect_rejected(o, "search.asha_rungs must be in [1, 8], got 9");
  o.halving.rungs = 3;
  o.halving.eta = 1;
  expect_rejected(o, "search.asha_eta must be greater than 1, got 1");
  o = options(StrategyKind::EndIncremental, 4, 8);
  o.target_layers = 10;
  expect_rejected(o, "search.target_layers must be a positive multiple of search.num_layers (4)");
  o.target_layers = 0;
  expect_rejected(o, "search.target_layers must be a positive multiple");
  o = options(StrategyKind::MiddleIncremental, 2, 3);
  o.target_layers = 8;
  expect_rejected(o, "search.max_evaluations (3) must be at least the number of middle_incremental stages");
  o = options(StrategyKind::Exhaustive, 0, 8);
  expect_rejected(o, "search.num_layers");
}

TEST(Exhaustive, proposes_every_feasible_candidate_once_in_block_order) {
  auto o = options(StrategyKind::Exhaustive, 6, 100);
  o.space.first = Primitive::Attention;
  o.space.max_attention_fraction = 0.5;
  const SearchSpace space(o.space);
  const std::vector<Genome> expected = space.enumerate();
  auto s = make_strategy(o);
  const auto proposals = run_sequentially(*s, [](const Proposal&) { return valid(1); });
  ASSERT_EQ(proposals.size(), expected.size());
  for (size_t i = 0; i < proposals.size(); ++i) {
    EXPECT_EQ(proposals[i].genome, expected[i]) << i;
    EXPECT_TRUE(space.contains(proposals[i].genome)) << proposals[i].genome.to_string();
    EXPECT_EQ(proposals[i].reason, "exhaustive");
    EXPECT_EQ(proposals[i].rung, 0);
  }
  EXPECT_TRUE(s->done());
  EXPECT_FALSE(s->propose().has_value());
}

TEST(Exhaustive, is_done_only_when_every_proposal_is_observed) {
  auto s = make_strategy(options(StrategyKind::Exhaustive, 2, 4));
  std::vector<Proposal> batch;
  while (auto p = s->propose()) batch.push_back(*p);
  ASSERT_EQ(batch.size(), 4u);
  EXPECT_FALSE(s->done());
  s->observe(batch[2], valid(0));
  EXPECT_THROW(s->observe(batch[2], valid(0)), hnas::InternalError);  // already observed
  Proposal wrong_rung = batch[0];
  wrong_rung.rung = 1;
  EXPECT_THROW(s->observe(wrong_rung, valid(0)), hnas::InternalError);
  Proposal stranger = batch[0];
  stranger.genome = Genome::parse("AAA");
  EXPECT_THROW(s->observe(stranger, valid(0)), hnas::InternalError);
  s->observe(batch[0], {NAN, false});
  s->observe(batch[1], valid(0));
  EXPECT_FALSE(s->done());
  s->observe(batch[3], valid(0));
  EXPECT_TRUE(s->done());
}

TEST(Exhaustive, refuses_a_space_larger_than_the_budget) {
  auto o = options(StrategyKind::Exhaustive, 16, 100);
  o.seconds_per_evaluation = 10;
  std::string message = message_of<hnas::ConfigError>([&] { make_strategy(o); });
  EXPECT_NE(message.find("65536 feasible candidates"), std::string::npos) << message;
  EXPECT_NE(message.find("search.max_evaluations = 100"), std::string::npos) << message;
  // 65536 * 10 s = 182.04 hours.
  EXPECT_NE(message.find("an exhaustive search would take about 182h02m of one team"), std::string::npos) << message;
  EXPECT_NE(message.find("search.strategy = bo"), std::string::npos) << message;

  o.seconds_per_evaluation = 0;
  o.space.num_layers = 64;
  message = message_of<hnas::ConfigError>([&] { make_strategy(o); });
  EXPECT_NE(message.find("about 1.84e+19 feasible candidates"), std::string::npos) << message;
  EXPECT_EQ(message.find("hours"), std::string::npos) << message;

  o = options(StrategyKind::Exhaustive, 16, 100);
  o.space.min_attention_fraction = 0.99;  // 16 A's only: one candidate, which fits
  EXPECT_NO_THROW(make_strategy(o));
}

TEST(Random, gives_distinct_feasible_candidates_deterministically) {
  auto o = options(StrategyKind::Random, 10, 40);
  o.space.last = Primitive::Mlp;
  o.space.min_attention_fraction = 0.2;
  const SearchSpace space(o.space);
  auto genomes = [&](uint64_t seed) {
    o.seed = seed;
    auto s = make_strategy(o);
    std::vector<std::string> out;
    for (const auto& p : run_sequentially(*s, [](const Proposal&) { return valid(0); })) {
      EXPECT_TRUE(space.contains(p.genome)) << p.genome.to_string();
      EXPECT_EQ(p.reason, "random");
      out.push_back(p.genome.to_string());
    }
    return out;
  };
  const auto first = genomes(5);
  ASSERT_EQ(first.size(), 40u);
  EXPECT_EQ(std::set<std::string>(first.begin(), first.end()).size(), 40u);
  EXPECT_EQ(genomes(5), first);
  EXPECT_NE(genomes(6), first);
}

TEST(Random, samples_large_spaces_without_repeats) {
  auto o = options(StrategyKind::Random, 24, 300);  // 2^24 blocks: drawn, not listed
  auto s = make_strategy(o);
  std::set<std::string> seen;
  const auto proposals = run_sequentially(*s, [](const Proposal&) { return valid(0); });
  for (const auto& p : proposals) seen.insert(p.genome.to_string());
  EXPECT_EQ(proposals.size(), 300u);
  EXPECT_EQ(seen.size(), 300u);
}

TEST(Random, covers_a_small_space_in_random_order) {
  auto o = options(StrategyKind::Random, 4, 100);
  const std::vector<Genome> block_order = SearchSpace(o.space).enumerate();
  auto s = make_strategy(o);
  std::vector<Genome> got;
  for (const auto& p : run_sequentially(*s, [](const Proposal&) { return valid(0); })) got.push_back(p.genome);
  ASSERT_EQ(got.size(), 16u);
  EXPECT_NE(got, block_order);
  auto key = [](const Genome& a, const Genome& b) { return a.to_string() < b.to_string(); };
  std::sort(got.begin(), got.end(), key);
  EXPECT_EQ(got, block_order);
}

TEST(Incremental, end_incremental_appends_blocks_to_the_frozen_best) {
  auto o = options(StrategyKind::EndIncremental, 2, 12);  // 3 stages of 4 = 2^2 evaluations: exhaustive
  o.target_layers = 6;
  auto s = make_strategy(o);
  const auto proposals = run_sequentially(*s, [](const Proposal& p) { return valid(am_pairs(p.genome)); });
  ASSERT_EQ(proposals.size(), 12u);
  std::map<int, std::vector<Genome>> by_stage;
  for (const auto& p : proposals) {
    EXPECT_EQ(p.genome.size(), static_cast<size_t>(2 * (p.stage + 1))) << p.genome.to_string();
    by_stage[p.stage].push_back(p.genome);
  }
  ASSERT_EQ(by_stage.size(), 3u);
  // Best of stage 0 is AM, of stage 1 AMAM: each stage keeps the previous best as its prefix.
  for (const auto& g : by_stage[1]) EXPECT_EQ(g.to_string().substr(0, 2), "AM") << g.to_string();
  for (const auto& g : by_stage[2]) EXPECT_EQ(g.to_string().substr(0, 4), "AMAM") << g.to_string();
  EXPECT_EQ(by_stage[2].size(), 4u);
  EXPECT_NE(std::find(by_stage[2].begin(), by_stage[2].end(), Genome::parse("AMAMAM")), by_stage[2].end());
  EXPECT_TRUE(s->done());
}

TEST(Incremental, middle_incremental_inserts_blocks_between_head_and_tail) {
  auto o = options(StrategyKind::MiddleIncremental, 2, 12);
  o.target_layers = 6;
  // Prefers M at the very end and A elsewhere, so head and tail are both visible.
  auto objective = [](const Proposal& p) {
    const Genome& g = p.genome;
    double v = g[g.size() - 1] == Primitive::Mlp ? 10 : 0;
    for (size_t i = 0; i + 1 < g.size(); ++i) v += g[i] == Primitive::Attention;
    return valid(v);
  };
  auto s = make_strategy(o);
  const auto proposals = run_sequentially(*s, objective);
  ASSERT_EQ(proposals.size(), 12u);
  std::map<int, std::vector<std::string>> by_stage;
  for (const auto& p : proposals) by_stage[p.stage].push_back(p.genome.to_string());
  // Stage 0 best: AM. Stage 1: A + block + M, best AAAM. Stage 2: AA + block + AM.
  for (const auto& g : by_stage[1]) {
    EXPECT_EQ(g.size(), 4u);
    EXPECT_EQ(g.front(), 'A') << g;
    EXPECT_EQ(g.back(), 'M') << g;
  }
  for (const auto& g : by_stage[2]) {
    EXPECT_EQ(g.size(), 6u);
    EXPECT_EQ(g.substr(0, 2), "AA") << g;
    EXPECT_EQ(g.substr(4), "AM") << g;
  }
  EXPECT_EQ(std::set<std::string>(by_stage[2].begin(), by_stage[2].end()),
            (std::set<std::string>{"AAAAAM", "AAAMAM", "AAMAAM", "AAMMAM"}));
}

TEST(Incremental, middle_split_of_an_odd_length_puts_the_extra_layer_in_the_head) {
  auto o = options(StrategyKind::MiddleIncremental, 3, 16);  // 2 stages of 2^3 = 8
  o.target_layers = 6;
  auto s = make_strategy(o);
  // Stage 0 best: AAM (last layer M, then as many A as possible); head AA, tail M.
  const auto proposals = run_sequentially(*s, [](const Proposal& p) {
    const Genome& g = p.genome;
    return valid((g[g.size() - 1] == Primitive::Mlp ? 10 : 0) + static_cast<double>(g.count(Primitive::Attention)));
  });
  ASSERT_EQ(proposals.size(), 16u);
  std::set<std::string> stage1;
  for (const auto& p : proposals)
    if (p.stage == 1) stage1.insert(p.genome.to_string());
  std::set<std::string> expected;
  for (const char* block : {"AAA", "AAM", "AMA", "AMM", "MAA", "MAM", "MMA", "MMM"})
    expected.insert(std::string("AA") + block + "M");
  EXPECT_EQ(stage1, expected);
}

TEST(Incremental, waits_for_the_stage_to_finish) {
  auto o = options(StrategyKind::EndIncremental, 2, 8);
  o.target_layers = 4;
  auto s = make_strategy(o);
  std::vector<Proposal> stage0;
  while (auto p = s->propose()) stage0.push_back(*p);
  ASSERT_EQ(stage0.size(), 4u);
  for (size_t i = 0; i < 3; ++i) {
    s->observe(stage0[i], valid(static_cast<double>(i == 1)));  // stage0[1] = AM is the best
    EXPECT_FALSE(s->propose().has_value()) << "the next stage started before its prefix is known";
  }
  EXPECT_FALSE(s->done());
  s->observe(stage0[3], {NAN, false});
  const auto next = s->propose();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->stage, 1);
  EXPECT_EQ(next->genome.to_string().substr(0, 2), stage0[1].genome.to_string());
  EXPECT_THROW(s->observe(stage0[3], valid(0)), hnas::InternalError);
}

TEST(Incremental, ties_go_to_the_first_observed) {
  auto o = options(StrategyKind::EndIncremental, 2, 8);
  o.target_layers = 4;
  auto s = make_strategy(o);
  std::vector<Proposal> stage0;
  while (auto p = s->propose()) stage0.push_back(*p);
  ASSERT_EQ(stage0.size(), 4u);
  // Observed in the order 2, 0, 3, 1 with objectives 0, 1, 1, 1: the best is stage0[0].
  s->observe(stage0[2], valid(0));
  s->observe(stage0[0], valid(1));
  s->observe(stage0[3], valid(1));
  s->observe(stage0[1], valid(1));
  const auto next = s->propose();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->genome.to_string().substr(0, 2), stage0[0].genome.to_string());
}

TEST(Incremental, stops_when_a_stage_has_no_valid_result) {
  auto o = options(StrategyKind::EndIncremental, 2, 12);
  o.target_layers = 6;
  auto s = make_strategy(o);
  const auto proposals = run_sequentially(*s, [](const Proposal&) { return Outcome{NAN, false}; });
  EXPECT_EQ(proposals.size(), 4u);  // stage 0 only
  EXPECT_TRUE(s->done());
  EXPECT_FALSE(s->propose().has_value());
}

TEST(SuccessiveHalving, fidelity_is_a_geometric_ladder) {
  auto o = options(StrategyKind::Exhaustive, 3, 8);
  o.halving.rungs = 3;
  o.halving.eta = 2;
  auto s = make_strategy(o);
  EXPECT_DOUBLE_EQ(s->fidelity(0), 0.25);
  EXPECT_DOUBLE_EQ(s->fidelity(1), 0.5);
  EXPECT_DOUBLE_EQ(s->fidelity(2), 1.0);
  EXPECT_THROW(s->fidelity(3), hnas::InternalError);
  o.halving.rungs = 1;
  EXPECT_DOUBLE_EQ(make_strategy(o)->fidelity(0), 1.0);  // no successive halving
}

TEST(SuccessiveHalving, promotes_the_top_of_a_rung_before_starting_new_candidates) {
  auto o = options(StrategyKind::Exhaustive, 3, 8);
  o.halving.rungs = 2;
  o.halving.eta = 2;
  auto s = make_strategy(o);
  std::vector<Proposal> batch;
  for (int i = 0; i < 4; ++i) batch.push_back(*s->propose());
  const double values[] = {1, 4, 2, 3};
  for (int i = 0; i < 4; ++i) s->observe(batch[static_cast<size_t>(i)], valid(values[i]));
  // Top floor(4 / 2) = 2 of rung 0: objectives 4 then 3.
  auto p = s->propose();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->genome, batch[1].genome);
  EXPECT_EQ(p->rung, 1);
  EXPECT_EQ(p->reason, "promoted");
  p = s->propose();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->genome, batch[3].genome);
  EXPECT_EQ(p->rung, 1);
  p = s->propose();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->rung, 0);
  EXPECT_EQ(p->reason, "exhaustive");
  EXPECT_EQ(p->genome.to_string(), "MAA");  // the 5th candidate in block order
}

TEST(SuccessiveHalving, never_promotes_invalid_outcomes) {
  auto o = options(StrategyKind::Exhaustive, 2, 4);
  o.halving.rungs = 2;
  o.halving.eta = 2;
  auto s = make_strategy(o);
  std::vector<Proposal> batch;
  while (auto p = s->propose()) batch.push_back(*p);
  ASSERT_EQ(batch.size(), 4u);
  s->observe(batch[0], {NAN, false});
  s->observe(batch[1], {NAN, false});
  s->observe(batch[2], valid(-5));
  s->observe(batch[3], {7.0, false});  // invalid even with a number
  auto p = s->propose();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->genome, batch[2].genome);
  EXPECT_EQ(p->rung, 1);
  EXPECT_FALSE(s->propose().has_value());  // nothing else qualifies, the base is exhausted
  EXPECT_FALSE(s->done());                 // the promotion is pending
  Proposal wrong = *p;
  wrong.rung = 0;
  EXPECT_THROW(s->observe(wrong, valid(0)), hnas::InternalError);
  s->observe(*p, valid(1));
  EXPECT_TRUE(s->done());
}

// Drives a strategy with up to `width` evaluations in flight, finishing them in a fixed,
// scrambled order; records (genome, rung, stage, reason) of every proposal.
std::vector<std::string> drive_async(Strategy& s, size_t width) {
  std::vector<std::string> log;
  std::deque<Proposal> in_flight;
  size_t tick = 0;
  while (!s.done()) {
    while (in_flight.size() < width) {
      auto p = s.propose();
      if (!p) break;
      log.push_back(p->genome.to_string() + "/" + std::to_string(p->rung) + "/" + std::to_string(p->stage) + "/" +
                    p->reason);
      in_flight.push_back(*p);
    }
    if (in_flight.empty()) {
      ADD_FAILURE() << "stuck: " << s.describe();
      break;
    }
    const size_t pick = (tick++ * 7) % in_flight.size();
    const Proposal p = in_flight[pick];
    in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(pick));
    // Higher rungs refine a noisy low-fidelity score.
    const double score = am_pairs(p.genome) + 0.1 * static_cast<double>(p.genome.count(Primitive::Mlp)) + p.rung;
    s.observe(p, (tick % 11 == 0) ? Outcome{NAN, false} : valid(score));
  }
  return log;
}

TEST(SuccessiveHalving, promotions_stay_within_the_top_fraction_and_replay_exactly) {
  auto o = options(StrategyKind::Random, 8, 60);
  o.halving.rungs = 3;
  o.halving.eta = 3;
  o.seed = 11;
  auto a = make_strategy(o);
  auto b = make_strategy(o);
  const auto log_a = drive_async(*a, 4);
  const auto log_b = drive_async(*b, 4);
  EXPECT_EQ(log_a, log_b);
  o.seed = 12;
  auto c = make_strategy(o);
  EXPECT_NE(drive_async(*c, 4), log_a);

  std::map<int, int> per_rung;
  std::set<std::string> seen;
  for (const auto& entry : log_a) {
    EXPECT_TRUE(seen.insert(entry).second) << "proposed twice: " << entry;
    const int rung = entry[9] - '0';  // "<8 letters>/<rung>/..."
    ++per_rung[rung];
    if (rung > 0) {
      EXPECT_NE(entry.find("promoted"), std::string::npos) << entry;
    }
  }
  EXPECT_EQ(per_rung[0], 60);
  // Asynchronous promotion can promote a little more than the final top 1/eta, never less.
  EXPECT_GE(per_rung[1], 60 / 3);
  EXPECT_LE(per_rung[1], 60 / 2);
  EXPECT_GE(per_rung[2], per_rung[1] / 3);
  EXPECT_LE(per_rung[2], per_rung[1] / 2);
}

// Checks each promotion against the test's own record of the rung below.
TEST(SuccessiveHalving, each_promotion_is_in_the_current_top_of_its_rung) {
  auto o = options(StrategyKind::Exhaustive, 5, 32);
  o.halving.rungs = 3;
  o.halving.eta = 2;
  auto s = make_strategy(o);
  std::map<int, std::vector<std::pair<double, std::string>>> results;  // rung -> (objective, genome)
  const SearchSpace space(o.space);
  auto objective = [&](const Proposal& p) {
    // A scrambled order of the 32 blocks, plus the rung.
    return std::fmod(static_cast<double>(space.block_index(p.genome)) * 13, 32) + p.rung;
  };
  size_t promotions = 0;
  while (!s->done()) {
    auto p = s->propose();
    ASSERT_TRUE(p);
    if (p->rung > 0) {
      ++promotions;
      auto below = results[p->rung - 1];
      std::stable_sort(below.begin(), below.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
      const size_t top = below.size() / 2;
      bool found = false;
      for (size_t k = 0; k < top; ++k) found |= below[k].second == p->genome.to_string();
      EXPECT_TRUE(found) << p->genome.to_string() << " promoted to rung " << p->rung;
    }
    const double value = objective(*p);
    results[p->rung].push_back({value, p->genome.to_string()});
    s->observe(*p, valid(value));
  }
  EXPECT_EQ(results[0].size(), 32u);
  EXPECT_GE(results[1].size(), 16u);  // at least the final top half of rung 0
  EXPECT_GE(results[2].size(), results[1].size() / 2);
  EXPECT_GT(promotions, 0u);
}

TEST(SuccessiveHalving, wraps_incremental_search_and_keeps_stages) {
  auto o = options(StrategyKind::EndIncremental, 2, 8);
  o.target_layers = 4;
  o.halving.rungs = 2;
  o.halving.eta = 2;
  auto s = make_strategy(o);
  const auto proposals = run_sequentially(*s, [](const Proposal& p) { return valid(am_pairs(p.genome) + p.rung); });
  int promoted = 0;
  for (const auto& p : proposals) {
    EXPECT_EQ(p.genome.size(), static_cast<size_t>(2 * (p.stage + 1))) << p.genome.to_string();
    promoted += p.rung == 1;
  }
  EXPECT_GE(promoted, 4);  // at least half of 2 x 4 rung-0 candidates
  EXPECT_TRUE(s->done());
  EXPECT_FALSE(s->describe().empty());
}

}  // namespace
