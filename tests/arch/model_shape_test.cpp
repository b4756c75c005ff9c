#include <gtest/gtest.h>

#include "hnas/arch/model_shape.hpp"
#include "hnas/core/error.hpp"

namespace {

using hnas::arch::Genome;
using hnas::arch::ModelShape;

TEST(ModelShape, mad_layer_sizes_match_the_reference_counts) {
  // MAD-lab at width 128: mh-attention block 66,176 (with biases), swiglu block 135,296.
  ModelShape s;
  s.attention_bias = true;
  EXPECT_EQ(hnas::arch::mad_swiglu_hidden(128), 352);
  EXPECT_EQ(hnas::arch::primitive_info(hnas::arch::Primitive::Attention).parameters(s), 66176);
  EXPECT_EQ(hnas::arch::primitive_info(hnas::arch::Primitive::Mlp).parameters(s), 135296);
}

TEST(ModelShape, llama_1b_non_embedding_count) {
  // Llama 3.2 1B: 16 x (GQA 32/8 x 64, SwiGLU 8192) at d 2048 is ~0.97B non-embedding.
  ModelShape s;
  s.vocab_size = 128256;
  s.d_model = 2048;
  s.num_heads = 32;
  s.num_kv_heads = 8;
  s.head_dim = 64;
  s.mlp_hidden = 8192;
  s.tie_embeddings = true;
  std::string alternating;
  for (int i = 0; i < 16; ++i) alternating += "AM";
  const auto count = hnas::arch::count_parameters(Genome::parse(alternating), s);
  const int64_t per_block = 2 * 2048 + 2048 * (32 + 16) * 64 + 32 * 64 * 2048 + 3 * 2048 * 8192;
  EXPECT_EQ(count.non_embedding, 16 * per_block + 2048);
  EXPECT_EQ(count.total, count.non_embedding + 128256 * 2048);
  EXPECT_NEAR(static_cast<double>(count.non_embedding) / 1e9, 0.97, 0.01);
}

TEST(ModelShape, flops_scale_with_layers_and_context) {
  ModelShape s;
  const double a128 = hnas::arch::forward_flops_per_token(hnas::arch::Primitive::Attention, s, 128);
  const double a256 = hnas::arch::forward_flops_per_token(hnas::arch::Primitive::Attention, s, 256);
  EXPECT_GT(a256, a128);
  EXPECT_DOUBLE_EQ(hnas::arch::forward_flops_per_token(hnas::arch::Primitive::Mlp, s, 128), 6.0 * 128 * 352);
  const double two = hnas::arch::forward_flops_per_token(Genome::parse("AM"), s, 128);
  const double four = hnas::arch::forward_flops_per_token(Genome::parse("AMAM"), s, 128);
  EXPECT_DOUBLE_EQ(four - two, two - 2.0 * 128 * 16);
}

TEST(ModelShape, validate_names_the_bad_field) {
  ModelShape s;
  s.num_kv_heads = 5;
  try {
    s.validate();
    FAIL();
  } catch (const hnas::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.kv_heads"), std::string::npos) << e.what();
  }
  s = ModelShape{};
  s.head_dim = 7;
  EXPECT_THROW(s.validate(), hnas::ConfigError);
  s = ModelShape{};
  EXPECT_NO_THROW(s.validate());
}

}  // namespace
