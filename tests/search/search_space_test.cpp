// SPDX-License-Identifier: Apache-2.0
#include "hnas/search/search_space.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "hnas/core/error.hpp"
#include "support/test_support.hpp"

namespace {

using hnas::Rng;
using hnas::arch::Genome;
using hnas::arch::Primitive;
using hnas::search::SearchSpace;
using hnas::search::SearchSpaceOptions;
using hnas::testing::message_of;

SearchSpaceOptions layers(int64_t n) {
  SearchSpaceOptions o;
  o.num_layers = n;
  return o;
}

// The constraints checked independently of SearchSpace::contains.
bool meets_constraints(const SearchSpaceOptions& o, const Genome& g) {
  if (o.first && g[0] != *o.first) return false;
  if (o.last && g[g.size() - 1] != *o.last) return false;
  const double fraction = static_cast<double>(g.count(Primitive::Attention)) / static_cast<double>(g.size());
  return fraction >= o.min_attention_fraction && fraction <= o.max_attention_fraction;
}

struct Case {
  const char* name;
  SearchSpaceOptions options;
  std::string prefix, suffix;
};

std::vector<Case> small_cases() {
  std::vector<Case> cases;
  cases.push_back({"plain n=6", layers(6), "", ""});
  auto o = layers(6);
  o.first = Primitive::Attention;
  o.last = Primitive::Mlp;
  cases.push_back({"first A, last M", o, "", ""});
  o = layers(8);
  o.min_attention_fraction = 0.3;
  o.max_attention_fraction = 0.4;
  cases.push_back({"fraction [0.3, 0.4]", o, "", ""});
  o = layers(4);
  o.min_attention_fraction = 0.25;
  o.max_attention_fraction = 0.5;
  o.last = Primitive::Mlp;
  cases.push_back({"in context", o, "AAM", "M"});
  o = layers(5);
  o.primitives = {Primitive::Mlp, Primitive::Attention};
  o.first = Primitive::Mlp;
  o.max_attention_fraction = 0.4;
  cases.push_back({"reversed set", o, "", ""});
  o = layers(3);
  o.primitives = {Primitive::Mlp};
  cases.push_back({"one primitive", o, "", ""});
  o = layers(1);
  o.first = Primitive::Attention;
  cases.push_back({"one layer", o, "", ""});
  return cases;
}

SearchSpace make(const Case& c) {
  return SearchSpace(c.options, c.prefix.empty() ? Genome() : Genome::parse(c.prefix),
                     c.suffix.empty() ? Genome() : Genome::parse(c.suffix));
}

TEST(SearchSpace, counts_and_enumerates_exactly_the_feasible_candidates) {
  for (const Case& c : small_cases()) {
    const SearchSpace space = make(c);
    const auto blocks = static_cast<uint64_t>(space.unconstrained_size());
    ASSERT_EQ(static_cast<double>(blocks), std::pow(c.options.primitives.size(), c.options.num_layers)) << c.name;
    std::vector<Genome> expected;  // brute force over every block, in block-index order
    for (uint64_t i = 0; i < blocks; ++i) {
      const Genome g = space.candidate_at(i);
      ASSERT_EQ(g.to_string().substr(0, c.prefix.size()), c.prefix) << c.name;
      if (meets_constraints(c.options, g)) expected.push_back(g);
      EXPECT_EQ(space.contains(g), meets_constraints(c.options, g)) << c.name << " " << g.to_string();
    }
    ASSERT_FALSE(expected.empty()) << c.name;
    const auto count = space.feasible_count();
    ASSERT_TRUE(count.has_value()) << c.name;
    EXPECT_EQ(*count, expected.size()) << c.name;
    EXPECT_EQ(space.feasible_size(), static_cast<double>(expected.size())) << c.name;
    const std::vector<Genome> listed = space.enumerate();
    ASSERT_EQ(listed.size(), expected.size()) << c.name;
    for (size_t i = 0; i < listed.size(); ++i) EXPECT_EQ(listed[i], expected[i]) << c.name << " #" << i;
  }
}

TEST(SearchSpace, known_sizes) {
  auto o = layers(8);
  o.min_attention_fraction = 0.3;  // 3 attention layers (0.375) is the only count in [0.3, 0.4]
  o.max_attention_fraction = 0.4;
  EXPECT_EQ(SearchSpace(o).feasible_count(), std::optional<uint64_t>(56));  // C(8, 3)
  o = layers(6);
  o.first = Primitive::Attention;
  EXPECT_EQ(SearchSpace(o).feasible_count(), std::optional<uint64_t>(32));
  EXPECT_EQ(SearchSpace(layers(16)).feasible_count(), std::optional<uint64_t>(65536));
}

TEST(SearchSpace, feasible_count_respects_the_limit_and_large_spaces_stay_cheap) {
  EXPECT_FALSE(SearchSpace(layers(25)).feasible_count().has_value());  // 2^25 > 2^24
  EXPECT_EQ(SearchSpace(layers(25)).feasible_count(uint64_t{1} << 25), std::optional<uint64_t>(uint64_t{1} << 25));
  EXPECT_EQ(SearchSpace(layers(4)).feasible_count(15), std::nullopt);
  EXPECT_EQ(SearchSpace(layers(63)).feasible_count(~uint64_t{0}), std::optional<uint64_t>(uint64_t{1} << 63));
  EXPECT_FALSE(SearchSpace(layers(64)).feasible_count(~uint64_t{0}).has_value());  // 2^64 does not fit

  const auto start = std::chrono::steady_clock::now();
  auto o = layers(64);
  o.min_attention_fraction = 0.49;
  o.max_attention_fraction = 0.51;  // only 32 attention layers of 64
  o.first = Primitive::Attention;
  const SearchSpace space(o);
  EXPECT_DOUBLE_EQ(space.unconstrained_size(), std::ldexp(1.0, 64));
  // C(63, 31): the first layer is fixed to A, 31 more of the remaining 63.
  EXPECT_NEAR(space.feasible_size() / 9.16312070471295e17, 1.0, 1e-12);
  Rng rng(7);
  for (int i = 0; i < 1000; ++i) {
    const Genome g = space.random(rng);
    ASSERT_EQ(g.size(), 64u);
    ASSERT_EQ(g.count(Primitive::Attention), 32u) << g.to_string();
    ASSERT_EQ(g[0], Primitive::Attention);
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
}

TEST(SearchSpace, block_index_digits_follow_the_primitive_order) {
  const SearchSpace space(layers(3));
  EXPECT_EQ(space.candidate_at(0).to_string(), "AAA");
  EXPECT_EQ(space.candidate_at(1).to_string(), "AAM");
  EXPECT_EQ(space.candidate_at(6).to_string(), "MMA");
  auto reversed = layers(3);
  reversed.primitives = {Primitive::Mlp, Primitive::Attention};
  EXPECT_EQ(SearchSpace(reversed).candidate_at(1).to_string(), "MMA");
  const SearchSpace in_context(layers(3), Genome::parse("MM"), Genome::parse("A"));
  EXPECT_EQ(in_context.candidate_at(1).to_string(), "MMAAMA");
  EXPECT_EQ(in_context.block_index(Genome::parse("MMMAMA")), 5u);
}

TEST(SearchSpace, block_index_round_trips) {
  for (const Case& c : small_cases()) {
    const SearchSpace space = make(c);
    for (uint64_t i = 0; i < static_cast<uint64_t>(space.unconstrained_size()); ++i)
      EXPECT_EQ(space.block_index(space.candidate_at(i)), i) << c.name;
  }
  const SearchSpace big(layers(40));
  const uint64_t index = (uint64_t{1} << 39) + 12345;
  EXPECT_EQ(big.block_index(big.candidate_at(index)), index);
}

TEST(SearchSpace, block_index_rejects_genomes_outside_the_context) {
  const SearchSpace space(layers(2), Genome::parse("AA"), Genome::parse("M"));
  EXPECT_THROW(space.block_index(Genome::parse("MAAMM")), hnas::InternalError);  // prefix differs
  EXPECT_THROW(space.block_index(Genome::parse("AAAM")), hnas::InternalError);   // too short
  EXPECT_THROW(space.encode(Genome::parse("AAAMA")), hnas::InternalError);       // suffix differs
}

TEST(SearchSpace, contains_explains_why_not) {
  auto o = layers(4);
  o.first = Primitive::Mlp;
  o.last = Primitive::Attention;
  o.max_attention_fraction = 0.5;
  const SearchSpace space(o);
  std::string why;
  EXPECT_TRUE(space.contains(Genome::parse("MAMA"), &why));
  EXPECT_FALSE(space.contains(Genome::parse("AMMA"), &why));
  EXPECT_EQ(why, "layer 1 is A; first = M");
  EXPECT_FALSE(space.contains(Genome::parse("MAAM"), &why));
  EXPECT_EQ(why, "layer 4 is M; last = A");
  EXPECT_FALSE(space.contains(Genome::parse("MAAA"), &why));
  EXPECT_NE(why.find("3 of 4 layers are attention (0.75)"), std::string::npos) << why;
  EXPECT_NE(why.find("[0, 0.5]"), std::string::npos) << why;
  EXPECT_FALSE(space.contains(Genome::parse("MAMMA"), &why));
  EXPECT_NE(why.find("it has 5 layers; the space's candidates have 4"), std::string::npos) << why;
  EXPECT_FALSE(space.contains(Genome::parse("MAMMA")));  // no reason wanted

  const SearchSpace in_context(layers(2), Genome::parse("AM"), Genome::parse("A"));
  EXPECT_TRUE(in_context.contains(Genome::parse("AMMMA")));
  EXPECT_FALSE(in_context.contains(Genome::parse("MMMMA"), &why));
  EXPECT_EQ(why, "layer 1 is M; the fixed prefix has A");
  EXPECT_FALSE(in_context.contains(Genome::parse("AMMMM"), &why));
  EXPECT_EQ(why, "layer 5 is M; the fixed suffix has A");

  auto mlp_only = layers(2);
  mlp_only.primitives = {Primitive::Mlp};
  EXPECT_FALSE(SearchSpace(mlp_only).contains(Genome::parse("MA"), &why));
  EXPECT_EQ(why, "layer 2 is A, not one of search.primitives (M)");
}

TEST(SearchSpace, constructor_rejects_bad_options_naming_the_key) {
  auto expect_rejected = [](const SearchSpaceOptions& o, const std::string& fragment, const char* prefix = "") {
    const std::string message =
        message_of<hnas::ConfigError>([&] { SearchSpace(o, *prefix ? Genome::parse(prefix) : Genome()); });
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
  };
  expect_rejected(layers(0), "search.num_layers must be in [1, 64], got 0");
  expect_rejected(layers(65), "search.num_layers must be in [1, 64], got 65");
  auto o = layers(4);
  o.primitives = {};
  expect_rejected(o, "search.primitives");
  o.primitives = {Primitive::Mlp, Primitive::Attention, Primitive::Mlp};
  expect_rejected(o, "search.primitives lists M twice");
  o = layers(4);
  o.min_attention_fraction = -0.1;
  expect_rejected(o, "search.min_attention_fraction must be in [0, 1]");
  o = layers(4);
  o.max_attention_fraction = 1.5;
  expect_rejected(o, "search.max_attention_fraction must be in [0, 1]");
  o.max_attention_fraction = NAN;
  expect_rejected(o, "search.max_attention_fraction must be in [0, 1]");
  o = layers(4);
  o.min_attention_fraction = 0.6;
  o.max_attention_fraction = 0.4;
  expect_rejected(o, "search.min_attention_fraction (0.6) exceeds search.max_attention_fraction (0.4)");
  o = layers(4);
  o.primitives = {Primitive::Mlp};
  o.first = Primitive::Attention;
  expect_rejected(o, "search.first = A is not one of search.primitives (M)");
  o = layers(4);
  o.first = Primitive::Mlp;
  expect_rejected(o, "search.first = M, but the fixed prefix starts with A", "AM");
  o = layers(1);
  o.first = Primitive::Attention;
  o.last = Primitive::Mlp;
  expect_rejected(o, "contradict");
  o = layers(6);  // 2.4 to 2.7 attention layers: no integer count fits
  o.min_attention_fraction = 0.4;
  o.max_attention_fraction = 0.45;
  expect_rejected(o, "search.min_attention_fraction = 0.4 and search.max_attention_fraction = 0.45 leave no feasible");
  o = layers(2);  // the prefix already holds too much attention
  o.max_attention_fraction = 0.5;
  expect_rejected(o, "3 to 5 can be attention", "AAA");
}

TEST(SearchSpace, random_is_feasible_deterministic_and_seed_dependent) {
  auto o = layers(12);
  o.first = Primitive::Attention;
  o.min_attention_fraction = 0.25;
  o.max_attention_fraction = 0.5;
  const SearchSpace space(o, Genome(), Genome::parse("M"));
  Rng a(1), b(1), c(2);
  int differ = 0;
  for (int i = 0; i < 200; ++i) {
    const Genome ga = space.random(a);
    std::string why;
    ASSERT_TRUE(space.contains(ga, &why)) << ga.to_string() << ": " << why;
    EXPECT_EQ(space.random(b), ga);
    differ += space.random(c) != ga;
  }
  EXPECT_GT(differ, 150);
}

TEST(SearchSpace, random_is_uniform_over_a_constrained_space) {
  auto o = layers(6);
  o.last = Primitive::Mlp;
  o.min_attention_fraction = 0.3;
  o.max_attention_fraction = 0.7;  // 2 to 4 attention layers
  const SearchSpace space(o);
  const std::vector<Genome> all = space.enumerate();
  ASSERT_EQ(all.size(), 10u + 10u + 5u);  // C(5,2) + C(5,3) + C(5,4)
  std::map<std::string, int> hits;
  const int per_cell = 400;
  const int draws = per_cell * static_cast<int>(all.size());
  Rng rng(42);
  for (int i = 0; i < draws; ++i) ++hits[space.random(rng).to_string()];
  ASSERT_EQ(hits.size(), all.size());
  double chi2 = 0;
  for (const auto& g : all) chi2 += std::pow(hits[g.to_string()] - per_cell, 2) / per_cell;
  // 24 degrees of freedom: the 99.9% quantile is 51.2. A sampler that picked the attention
  // count uniformly (instead of by its number of blocks) gives chi2 in the hundreds.
  EXPECT_LT(chi2, 51.2);
}

TEST(SearchSpace, random_weights_attention_counts_by_their_number_of_blocks) {
  auto o = layers(16);
  o.min_attention_fraction = 0.3;  // 5 or 6 attention layers of 16
  o.max_attention_fraction = 0.4;
  const SearchSpace space(o);
  Rng rng(3);
  int five = 0;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) {
    const size_t attention = space.random(rng).count(Primitive::Attention);
    ASSERT_TRUE(attention == 5 || attention == 6);
    five += attention == 5;
  }
  const double expected = 4368.0 / (4368.0 + 8008.0);  // C(16,5) / (C(16,5) + C(16,6))
  EXPECT_NEAR(five / static_cast<double>(draws), expected, 0.015);
}

TEST(SearchSpace, encodes_the_block_only) {
  const SearchSpace space(layers(4), Genome::parse("MM"), Genome::parse("A"));
  EXPECT_EQ(space.encoding_size(), 4u);
  EXPECT_EQ(space.encode(Genome::parse("MMAMMAA")), (std::vector<double>{0, 1, 1, 0}));
  auto reversed = layers(3);
  reversed.primitives = {Primitive::Mlp, Primitive::Attention};
  EXPECT_EQ(SearchSpace(reversed).encode(Genome::parse("AMM")), (std::vector<double>{1, 0, 0}));
  auto single = layers(3);
  single.primitives = {Primitive::Mlp};
  const SearchSpace one(single);
  EXPECT_EQ(one.encoding_size(), 3u);
  EXPECT_EQ(one.encode(Genome::parse("MMM")), (std::vector<double>{1, 1, 1}));  // one-hot, Z = 1
}

}  // namespace
