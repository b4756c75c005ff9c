// SPDX-License-Identifier: Apache-2.0
// Unit tests of the extrapolator: presets against their published sizes, stretching,
// stacking, the paper's two 1B architectures, costs and errors. Expected values are
// computed by hand in the comments.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "hnas/arch/model_shape.hpp"
#include "hnas/arch/primitive.hpp"
#include "hnas/core/error.hpp"
#include "hnas/extrapolate/extrapolate.hpp"
#include "hnas/extrapolate/target.hpp"

namespace {

using hnas::arch::Genome;
using hnas::arch::Primitive;
namespace ex = hnas::extrapolate;

std::string repeat(const std::string& unit, int64_t n) {
  std::string out;
  for (int64_t i = 0; i < n; ++i) out += unit;
  return out;
}

// A small target whose numbers are easy by hand: d 16, 4 heads of 8 over 2 KV heads,
// SwiGLU 40, vocab 100, tied.
//   attention layer: 16 (norm) + 16 x (4 + 2x2) x 8 (QKV) + 32 x 16 (out) = 16 + 1024 + 512 = 1552
//   MLP layer:       16 (norm) + 3 x 16 x 40                               = 16 + 1920       = 1936
ex::TargetShape small_target(int64_t blocks) {
  ex::TargetShape t;
  t.name = "custom";
  t.shape.vocab_size = 100;
  t.shape.d_model = 16;
  t.shape.num_heads = 4;
  t.shape.num_kv_heads = 2;
  t.shape.head_dim = 8;
  t.shape.mlp_hidden = 40;
  t.shape.tie_embeddings = true;
  t.blocks = blocks;
  t.context_length = 64;
  return t;
}

// The published figure's rounding: half a unit of its last significant digit
// (0.10B with 2 digits: 0.005B).
double half_unit(double published, int digits) {
  const double exponent = std::floor(std::log10(published)) - digits + 1;
  return 0.5 * std::pow(10.0, exponent);
}

// Within 1% of the published figure, or, for a 2-digit figure, within its rounding.
bool matches_published(double counted, double published, int digits) {
  const double error = std::fabs(counted - published);
  if (error <= 0.01 * published) return true;
  return digits == 2 && error <= half_unit(published, digits);
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const hnas::ConfigError& e) {
    return e.what();
  }
  return "(nothing thrown)";
}

TEST(Extrapolate, published_size_rule_is_not_vacuous) {
  EXPECT_DOUBLE_EQ(half_unit(0.10e9, 2), 0.005e9);
  EXPECT_DOUBLE_EQ(half_unit(2.78e9, 3), 0.005e9);
  EXPECT_TRUE(matches_published(0.0965e9, 0.10e9, 2));   // rounds to 0.10B
  EXPECT_FALSE(matches_published(0.0949e9, 0.10e9, 2));  // rounds to 0.09B
  EXPECT_FALSE(matches_published(2.75e9, 2.78e9, 3));    // 1.1% off a 3-digit figure
}

TEST(Extrapolate, presets_are_listed_in_order) {
  EXPECT_EQ(ex::preset_names(), "100M, 350M, 1B, 3B, llama3.2-1B, llama3.2-3B, llama3.1-8B");
  ASSERT_EQ(ex::target_presets().size(), 7u);
  EXPECT_EQ(ex::target_presets()[2].name, "1B");
  EXPECT_EQ(&ex::target_preset("llama3.1-8B"), &ex::target_presets()[6]);
}

TEST(Extrapolate, every_preset_matches_its_published_size) {
  for (const auto& t : ex::target_presets()) {
    SCOPED_TRACE(t.name);
    EXPECT_NO_THROW(t.validate());
    EXPECT_EQ(ex::baseline_genome(t).to_string(), repeat("AM", t.blocks));
    EXPECT_EQ(t.shape.vocab_size, 128256);
    EXPECT_EQ(t.shape.rope_theta, 500000.0);
    EXPECT_EQ(t.context_length, 8192);
    EXPECT_FALSE(t.shape.attention_bias);
    EXPECT_EQ(t.primitives, "AM");
    EXPECT_FALSE(t.source.empty());
    EXPECT_FALSE(t.description.empty());
    // Exactly one figure is published per preset.
    EXPECT_TRUE((t.published_non_embedding > 0) != (t.published_total > 0));
    const auto count = hnas::arch::count_parameters(ex::baseline_genome(t), t.shape);
    if (t.published_non_embedding > 0) {
      EXPECT_TRUE(
          matches_published(static_cast<double>(count.non_embedding), t.published_non_embedding, t.published_digits))
          << count.non_embedding << " vs " << t.published_non_embedding;
    } else {
      EXPECT_TRUE(matches_published(static_cast<double>(count.total), t.published_total, t.published_digits))
          << count.total << " vs " << t.published_total;
    }
  }
}

TEST(Extrapolate, preset_sizes_by_hand) {
  // 1B (16 blocks, d 2048, FFN 8192, 32 heads / 8 KV of 64):
  //   A = 2048 + 2048 x (32 + 16) x 64 + 2048 x 2048 = 2,048 + 6,291,456 + 4,194,304 = 10,487,808
  //   M = 2048 + 3 x 2048 x 8192                      = 2,048 + 50,331,648            = 50,333,696
  //   block 60,821,504; 16 blocks + final norm 2048 = 973,146,112 = 0.973B (published 0.97B)
  const auto& b1 = ex::target_preset("1B");
  EXPECT_EQ(ex::trunk_parameters(Genome::parse("A"), b1.shape), 10487808);
  EXPECT_EQ(ex::trunk_parameters(Genome::parse("M"), b1.shape), 50333696);
  EXPECT_EQ(ex::trunk_parameters(ex::baseline_genome(b1), b1.shape), 973144064);
  EXPECT_EQ(hnas::arch::count_parameters(ex::baseline_genome(b1), b1.shape).non_embedding, 973146112);

  // 100M (8 blocks, d 1024, FFN 3072, 16 heads / 4 KV of 64):
  //   A = 1024 + 1024 x 24 x 64 + 1024 x 1024 = 2,622,464; M = 1024 + 3 x 1024 x 3072 = 9,438,208
  //   8 x 12,060,672 + 1024 = 96,486,400 = 0.0965B: 3.5% under 0.10B, inside its rounding.
  const auto& m100 = ex::target_preset("100M");
  EXPECT_EQ(hnas::arch::count_parameters(ex::baseline_genome(m100), m100.shape).non_embedding, 96486400);

  // Llama 3.1 8B, untied (32 blocks, d 4096, FFN 14336, 32 heads / 8 KV of 128):
  //   A = 4096 + 4096 x 48 x 128 + 4096 x 4096 = 41,947,136; M = 4096 + 3 x 4096 x 14336 = 176,164,864
  //   32 x 218,112,000 + 4096 = 6,979,588,096; + embedding and head 2 x 128256 x 4096 = 1,050,673,152
  //   total 8,030,261,248 = 8.03B.
  const auto& b8 = ex::target_preset("llama3.1-8B");
  EXPECT_FALSE(b8.shape.tie_embeddings);
  EXPECT_EQ(hnas::arch::count_parameters(ex::baseline_genome(b8), b8.shape).total, 8030261248);
}

TEST(Extrapolate, stretch_lengthens_every_run) {
  // A2 M4 x 1.5 -> A3 M6.
  EXPECT_EQ(ex::stretch(Genome::parse("AAMMMM"), 1.5).to_string(), "AAAMMMMMM");
  EXPECT_EQ(ex::stretch(Genome::parse("AAMMMM"), 2.0).to_string(), "AAAAMMMMMMMM");
  // Noise above an integer factor is not an extra layer: 2 x 2.0000000001 = 4.0000000002 -> 4.
  EXPECT_EQ(ex::stretch(Genome::parse("AAMMMM"), 2.0000000001).to_string(), "AAAAMMMMMMMM");
  EXPECT_EQ(ex::stretch(Genome::parse("AMAM"), 1.0).to_string(), "AMAM");
  // 0.3: A2 -> ceil(0.6) = 1, M4 -> ceil(1.2) = 2; runs of 1 -> ceil(0.3) = 1.
  EXPECT_EQ(ex::stretch(Genome::parse("AAMMMM"), 0.3).to_string(), "AMM");
  EXPECT_EQ(ex::stretch(Genome::parse("AMA"), 0.3).to_string(), "AMA");
  EXPECT_EQ(ex::stretch(Genome::parse("AMA"), 1e-6).to_string(), "AMA");
}

TEST(Extrapolate, stretch_refuses_a_bad_factor) {
  const Genome g = Genome::parse("AM");
  EXPECT_THROW(ex::stretch(g, 0.0), hnas::ConfigError);
  EXPECT_THROW(ex::stretch(g, -1.5), hnas::ConfigError);
  EXPECT_THROW(ex::stretch(g, std::nan("")), hnas::ConfigError);
  EXPECT_THROW(ex::stretch(g, 1e300), hnas::ConfigError);  // beyond Genome::kMaxLayers
  EXPECT_NE(message_of([&] { ex::stretch(g, -1.5); }).find("-1.5"), std::string::npos);
}

TEST(Extrapolate, stacking_with_a_remainder) {
  // Any width: M = 5 (A + M), m = 2A + 2M, M/m = 2.5 -> 2 copies, remainder 0.5;
  // stretch(AAMM, 0.5) = AM.
  const auto t = small_target(5);
  const auto x = ex::extrapolate(Genome::parse("AAMM"), ex::Method::Stack, t);
  EXPECT_EQ(x.method, ex::Method::Stack);
  EXPECT_EQ(x.source_size, 2 * 1552 + 2 * 1936);
  EXPECT_EQ(x.target_size, 5 * (1552 + 1936));
  EXPECT_DOUBLE_EQ(x.scale_factor, 2.5);
  EXPECT_EQ(x.copies, 2);
  EXPECT_DOUBLE_EQ(x.remainder_fraction, 0.5);
  EXPECT_EQ(x.result.to_string(), "AAMMAAMMAM");
  EXPECT_EQ(x.source.to_string(), "AAMM");
}

TEST(Extrapolate, stacking_without_a_remainder) {
  // M = 4 (A + M) = 2 x m: 2 copies, nothing appended.
  const auto x = ex::extrapolate(Genome::parse("AMAM"), ex::Method::Stack, small_target(4));
  EXPECT_EQ(x.copies, 2);
  EXPECT_DOUBLE_EQ(x.remainder_fraction, 0.0);
  EXPECT_EQ(x.result.to_string(), "AMAMAMAM");
}

TEST(Extrapolate, stacking_a_source_larger_than_the_target) {
  // M = A + M, m = 2A + 2M: no whole copy, just stretch(AAMM, 0.5) = AM.
  const auto x = ex::extrapolate(Genome::parse("AAMM"), ex::Method::Stack, small_target(1));
  EXPECT_EQ(x.copies, 0);
  EXPECT_DOUBLE_EQ(x.remainder_fraction, 0.5);
  EXPECT_EQ(x.result.to_string(), "AM");
}

TEST(Extrapolate, stretching_a_small_target) {
  // M/m = 2.5: A2 -> 5, M2 -> 5.
  const auto x = ex::extrapolate(Genome::parse("AAMM"), ex::Method::Stretch, small_target(5));
  EXPECT_EQ(x.method, ex::Method::Stretch);
  EXPECT_EQ(x.copies, 0);
  EXPECT_DOUBLE_EQ(x.remainder_fraction, 0.0);
  EXPECT_EQ(x.result.to_string(), "AAAAAMMMMM");
}

TEST(Extrapolate, target_depth_changes_only_the_width) {
  // 5 blocks = 10 layers: a 10-layer source is kept as it is, whatever was asked.
  const auto t = small_target(5);
  const Genome source = Genome::parse("AAAMMMMMMM");
  for (ex::Method asked : {ex::Method::Stack, ex::Method::Stretch, ex::Method::Width}) {
    const auto x = ex::extrapolate(source, asked, t);
    EXPECT_EQ(x.method, ex::Method::Width);
    EXPECT_EQ(x.result, source);
    EXPECT_EQ(x.copies, 0);
    EXPECT_DOUBLE_EQ(x.remainder_fraction, 0.0);
  }
  // Width of another depth is refused with the depth it needs.
  const std::string why = message_of([&] { ex::extrapolate(Genome::parse("AM"), ex::Method::Width, t); });
  EXPECT_NE(why.find("10 layers"), std::string::npos) << why;
}

TEST(Extrapolate, the_papers_architectures_at_1b) {
  // Per layer at 1B: A = 10,487,808, M = 50,333,696; M (target) = 16 x 60,821,504 = 973,144,064.
  const auto& t = ex::target_preset("1B");

  // Stacked AAMMMM: m = 2A + 4M = 20,975,616 + 201,334,784 = 222,310,400.
  //   M/m = 4.3774 -> 4 copies (889,241,600); remainder 83,902,464 = 0.37741 m.
  //   stretch(AAMMMM, 0.37741): A2 -> ceil(0.755) = 1, M4 -> ceil(1.510) = 2: AMM.
  //   Result (AAMMMM) x 4 + AMM: 27 layers, 9 A, 18 M.
  const auto stacked = ex::extrapolate(Genome::parse("AAMMMM"), ex::Method::Stack, t);
  EXPECT_EQ(stacked.source_size, 222310400);
  EXPECT_EQ(stacked.target_size, 973144064);
  EXPECT_EQ(stacked.copies, 4);
  EXPECT_DOUBLE_EQ(stacked.remainder_fraction, 83902464.0 / 222310400.0);
  EXPECT_EQ(stacked.result.to_string(), repeat("AAMMMM", 4) + "AMM");

  // Stretched AAMMMMMAAMMMAMMM (A2 M5 A2 M3 A1 M3): m = 5A + 11M = 52,439,040 + 553,670,656
  //   = 606,109,696; s = M/m = 1.60556. Runs: ceil(3.211) = 4, ceil(8.028) = 9, 4,
  //   ceil(4.817) = 5, ceil(1.606) = 2, 5: A4 M9 A4 M5 A2 M5, 29 layers, 10 A, 19 M.
  const auto stretched = ex::extrapolate(Genome::parse("AAMMMMMAAMMMAMMM"), ex::Method::Stretch, t);
  EXPECT_EQ(stretched.source_size, 606109696);
  EXPECT_DOUBLE_EQ(stretched.scale_factor, 973144064.0 / 606109696.0);
  EXPECT_EQ(stretched.result.to_run_length(), "A4M9A4M5A2M5");

  const auto base = ex::cost_of(ex::baseline_genome(t), t);
  const auto a = ex::cost_of(stacked.result, t);
  const auto b = ex::cost_of(stretched.result, t);
  EXPECT_EQ(base.layers, 32);
  EXPECT_EQ(base.attention_layers, 16);
  EXPECT_EQ(a.attention_layers, 9);
  EXPECT_EQ(a.mlp_layers, 18);
  EXPECT_EQ(a.layers, 27);
  EXPECT_EQ(b.attention_layers, 10);
  EXPECT_EQ(b.mlp_layers, 19);
  EXPECT_EQ(b.layers, 29);
  // Digest section 7: fewer layers than Llama 3.2's 32 and fewer attention layers than its 16.
  EXPECT_LT(a.layers, base.layers);
  EXPECT_LT(b.layers, base.layers);
  EXPECT_LT(a.attention_layers, base.attention_layers);
  EXPECT_LT(b.attention_layers, base.attention_layers);
  // KV cache smaller by 16/9 = 1.778 (stacked) and 16/10 = 1.6 (stretched); their mean, 1.689,
  // agrees with the paper's reported 1.69x.
  const double ratio_a = static_cast<double>(base.kv_cache_bytes_per_token_bf16) / a.kv_cache_bytes_per_token_bf16;
  const double ratio_b = static_cast<double>(base.kv_cache_bytes_per_token_bf16) / b.kv_cache_bytes_per_token_bf16;
  EXPECT_DOUBLE_EQ(ratio_a, 16.0 / 9.0);
  EXPECT_DOUBLE_EQ(ratio_b, 1.6);
  EXPECT_NEAR((ratio_a + ratio_b) / 2, 1.69, 0.005);
  // Both land a little above the target size (the ceilings): 1,000,396,800 and 1,061,218,304.
  EXPECT_EQ(ex::trunk_parameters(stacked.result, t.shape), 1000396800);
  EXPECT_EQ(ex::trunk_parameters(stretched.result, t.shape), 1061218304);

  // Digest section 6: stretching the 6-layer pattern to 1B is all attention, then all MLP.
  EXPECT_EQ(ex::extrapolate(Genome::parse("AAMMMM"), ex::Method::Stretch, t).result.to_run_length(), "A9M18");
}

TEST(Extrapolate, cost_of_a_small_target) {
  // AAM at the small target, context 64.
  //   KV: 2 attention layers x 2 (K, V) x 2 KV heads x 8 = 64 values: 128 bytes bf16, 256 fp32.
  //   FLOPs, attention: 2 x 16 x 64 (QKV) + 2 x 32 x 16 (out) + 4 x 32 x 32.5 (scores and
  //   values over the mean causal context (64 + 1) / 2) = 2048 + 1024 + 4160 = 7232;
  //   MLP: 6 x 16 x 40 = 3840; head: 2 x 16 x 100 = 3200. Total 2 x 7232 + 3840 + 3200 = 21504.
  //   Parameters: 2 x 1552 + 1936 + 16 (final norm) = 5056 non-embedding; + 100 x 16 tied = 6656.
  const auto c = ex::cost_of(Genome::parse("AAM"), small_target(2));
  EXPECT_EQ(c.layers, 3);
  EXPECT_EQ(c.attention_layers, 2);
  EXPECT_EQ(c.mlp_layers, 1);
  EXPECT_EQ(c.kv_cache_bytes_per_token_bf16, 128);
  EXPECT_EQ(c.kv_cache_bytes_per_token_fp32, 256);
  EXPECT_DOUBLE_EQ(c.forward_flops_per_token, 21504.0);
  EXPECT_EQ(c.parameters.non_embedding, 5056);
  EXPECT_EQ(c.parameters.total, 6656);
}

TEST(Extrapolate, megatron_pattern_and_method_names) {
  EXPECT_EQ(ex::megatron_pattern(Genome::parse("AAMM")), "**--");
  EXPECT_EQ(ex::megatron_pattern(Genome::parse("MAMA")), "-*-*");
  EXPECT_STREQ(ex::method_name(ex::Method::Stack), "stack");
  EXPECT_STREQ(ex::method_name(ex::Method::Stretch), "stretch");
  EXPECT_STREQ(ex::method_name(ex::Method::Width), "width");
}

TEST(Extrapolate, unknown_preset_lists_the_presets) {
  EXPECT_EQ(message_of([] { ex::target_preset("2B"); }),
            "unknown target \"2B\"; the presets are 100M, 350M, 1B, 3B, llama3.2-1B, llama3.2-3B, llama3.1-8B "
            "(or custom)");
}

TEST(Extrapolate, validate_names_the_key) {
  auto t = small_target(2);
  EXPECT_NO_THROW(t.validate());
  t.shape.num_kv_heads = 3;  // 4 heads are not a multiple of 3
  std::string why = message_of([&] { t.validate(); });
  EXPECT_NE(why.find("extrapolate.heads"), std::string::npos) << why;
  EXPECT_NE(why.find("extrapolate.kv_heads"), std::string::npos) << why;
  EXPECT_EQ(why.find("model."), std::string::npos) << why;

  t = small_target(0);
  why = message_of([&] { t.validate(); });
  EXPECT_NE(why.find("extrapolate.blocks"), std::string::npos) << why;
  // extrapolate() validates the target first.
  EXPECT_EQ(message_of([&] { ex::extrapolate(Genome::parse("AM"), ex::Method::Stack, t); }), why);

  t = small_target(2);
  t.context_length = 0;
  EXPECT_NE(message_of([&] { t.validate(); }).find("extrapolate.context_length"), std::string::npos);

  t = small_target(2);
  t.primitives = "AX";
  EXPECT_NE(message_of([&] { t.validate(); }).find("extrapolate.primitives"), std::string::npos);
}

TEST(Extrapolate, a_primitive_the_target_lacks_is_refused) {
  auto t = small_target(4);
  t.primitives = "A";
  EXPECT_EQ(message_of([&] { ex::extrapolate(Genome::parse("AAMM"), ex::Method::Stack, t); }),
            "architecture AAMM has primitive 'M' at layer 3, which target custom does not define (it defines A)");
  EXPECT_THROW(ex::cost_of(Genome::parse("AM"), t), hnas::ConfigError);
  EXPECT_THROW(ex::extrapolate(Genome(), ex::Method::Stack, small_target(4)), hnas::ConfigError);
}

}  // namespace
