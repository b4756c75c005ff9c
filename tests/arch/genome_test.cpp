#include <gtest/gtest.h>

#include <string>

#include "hnas/arch/genome.hpp"
#include "hnas/arch/primitive.hpp"
#include "hnas/core/error.hpp"

namespace {

using hnas::arch::Genome;
using hnas::arch::Primitive;

TEST(Genome, parses_letters_and_run_length_to_the_same_genome) {
  const Genome plain = Genome::parse("AAMMMM");
  const Genome rle = Genome::parse("A2M4");
  EXPECT_EQ(plain, rle);
  ASSERT_EQ(plain.size(), 6u);
  EXPECT_EQ(plain[0], Primitive::Attention);
  EXPECT_EQ(plain[5], Primitive::Mlp);
  EXPECT_EQ(plain.count(Primitive::Attention), 2u);
  EXPECT_EQ(Genome::parse("AM3A"), Genome::parse("AMMMA"));
}

TEST(Genome, round_trips_through_both_forms) {
  for (const char* text : {"A", "M", "AAMMMM", "AAMMMMMAAMMMAMMM", "AMAMAMAM", "MMMMMMMMMMMMA"}) {
    const Genome g = Genome::parse(text);
    EXPECT_EQ(g.to_string(), text);
    EXPECT_EQ(Genome::parse(g.to_run_length()), g) << text;
  }
  EXPECT_EQ(Genome::parse("AAMMMMMAAMMMAMMM").to_run_length(), "A2M5A2M3AM3");
  EXPECT_EQ(Genome::parse("A12").to_run_length(), "A12");
  EXPECT_EQ(Genome::parse("A12").size(), 12u);
}

// Each malformed string must be rejected with a message naming the problem.
void expect_rejected(const std::string& text, const std::string& fragment) {
  try {
    Genome::parse(text);
    ADD_FAILURE() << "accepted \"" << text << "\"";
  } catch (const hnas::ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(fragment), std::string::npos) << "\"" << text << "\" gave: " << message;
  }
}

TEST(Genome, rejects_every_kind_of_malformed_string) {
  expect_rejected("", "empty");
  expect_rejected("AXM", "unknown primitive at position 2 ('X')");
  expect_rejected("aamm", "upper case at position 1");
  expect_rejected("4A", "must follow a primitive letter at position 1");
  expect_rejected("A0M", "at least 1 at position 2");
  expect_rejected("A02", "must not start with 0");
  expect_rejected("A M", "whitespace");
  expect_rejected("AM-", "unknown primitive at position 3");
  expect_rejected("A99999", "exceeds the limit");
  expect_rejected("A4000M4000", "more than 4096 layers");
}

}  // namespace

TEST(PrimitiveRegistry, has_one_row_per_primitive_in_primitive_order) {
  const auto& registry = hnas::arch::primitive_registry();
  ASSERT_EQ(registry.size(), hnas::arch::kNumPrimitives);
  for (size_t i = 0; i < registry.size(); ++i) EXPECT_EQ(static_cast<size_t>(registry[i].id), i);
}
