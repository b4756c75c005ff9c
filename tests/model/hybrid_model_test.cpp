#include <gtest/gtest.h>

#include <torch/torch.h>

#include "hnas/arch/model_shape.hpp"
#include "hnas/core/error.hpp"
#include "hnas/model/hybrid_model.hpp"

namespace {

using hnas::arch::Backbone;
using hnas::arch::Genome;
using hnas::arch::ModelShape;
using hnas::model::HybridModel;
using hnas::model::HybridModelOptions;
using hnas::model::Kernels;

HybridModel make_model(const std::string& arch, const ModelShape& shape, Kernels kernels = Kernels::Fused,
                       uint64_t seed = 1) {
  HybridModelOptions options;
  options.genome = Genome::parse(arch);
  options.shape = shape;
  options.kernels = kernels;
  options.seed = seed;
  return HybridModel(options);
}

ModelShape small_shape() {
  ModelShape s;
  s.vocab_size = 11;
  s.d_model = 24;
  s.num_heads = 6;
  s.num_kv_heads = 2;
  s.head_dim = 4;
  s.mlp_hidden = 40;
  s.max_seq_len = 9;
  return s;
}

TEST(HybridModel, parameter_count_equals_numel_for_several_shapes) {
  std::vector<ModelShape> shapes;
  shapes.push_back(small_shape());
  ModelShape mad;  // MAD search scale with attention biases and a biased LM head
  mad.attention_bias = true;
  mad.head_bias = true;
  shapes.push_back(mad);
  ModelShape tied = small_shape();
  tied.tie_embeddings = true;
  shapes.push_back(tied);
  ModelShape odd = small_shape();
  odd.d_model = 17;
  odd.num_heads = 3;
  odd.num_kv_heads = 1;
  odd.head_dim = 6;
  odd.mlp_hidden = 13;
  shapes.push_back(odd);
  ModelShape encoder = small_shape();
  encoder.backbone = Backbone::AutoEncoder;
  shapes.push_back(encoder);
  for (size_t i = 0; i < shapes.size(); ++i) {
    for (const char* arch : {"A", "M", "AAMMMM", "AMAMAMAM", "MMA"}) {
      auto model = make_model(arch, shapes[i]);
      const auto counted = hnas::arch::count_parameters(Genome::parse(arch), shapes[i]);
      EXPECT_EQ(counted.total, model->num_parameters()) << "shape " << i << " arch " << arch;
      EXPECT_LT(counted.non_embedding, counted.total);
    }
  }
}

TEST(HybridModel, same_seed_same_weights_different_seed_different) {
  auto a = make_model("AMAM", small_shape(), Kernels::Fused, 7);
  auto b = make_model("AMAM", small_shape(), Kernels::Fused, 7);
  auto c = make_model("AMAM", small_shape(), Kernels::Fused, 8);
  auto pa = a->parameters(), pb = b->parameters(), pc = c->parameters();
  bool any_differs = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(torch::equal(pa[i], pb[i])) << "parameter " << i;
    any_differs |= !torch::equal(pa[i], pc[i]);
  }
  EXPECT_TRUE(any_differs);
}

TEST(HybridModel, init_follows_the_scheme) {
  ModelShape s = small_shape();
  s.attention_bias = true;
  auto model = make_model("AM", s);
  for (const auto& item : model->named_parameters()) {
    const auto& name = item.key();
    const auto& p = item.value();
    if (name.find("norm") != std::string::npos) {
      EXPECT_TRUE(torch::all(p == 1).item<bool>()) << name;
    } else if (name.find("bias") != std::string::npos) {
      EXPECT_TRUE(torch::all(p == 0).item<bool>()) << name;
    } else {
      EXPECT_NEAR(p.std().item<double>(), 0.02, 0.006) << name;
    }
  }
}

// Changing tokens at positions >= t never changes the logits at positions < t.
void expect_causal(Kernels kernels) {
  auto model = make_model("AMAAM", small_shape(), kernels);
  torch::NoGradGuard no_grad;
  auto tokens = torch::randint(0, 11, {2, 9}, torch::kLong);
  auto logits = model->forward(tokens);
  for (int64_t t = 1; t < 9; ++t) {
    auto changed = tokens.clone();
    changed.slice(1, t) = (changed.slice(1, t) + 3) % 11;
    auto other = model->forward(changed);
    EXPECT_TRUE(torch::equal(logits.slice(1, 0, t), other.slice(1, 0, t))) << "prefix length " << t;
    EXPECT_FALSE(torch::allclose(logits.slice(1, t), other.slice(1, t))) << "suffix from " << t;
  }
}

TEST(HybridModel, causal_with_fused_kernels) { expect_causal(Kernels::Fused); }
TEST(HybridModel, causal_with_reference_ops) { expect_causal(Kernels::Reference); }

TEST(HybridModel, fused_and_reference_paths_agree_on_loss_and_gradients) {
  auto fused = make_model("AAMMAM", small_shape(), Kernels::Fused, 3);
  auto reference = make_model("AAMMAM", small_shape(), Kernels::Reference, 3);
  auto tokens = torch::randint(0, 11, {3, 9}, torch::kLong);
  auto targets = torch::randint(0, 11, {3, 9}, torch::kLong);
  auto loss_f = torch::cross_entropy_loss(fused->forward(tokens).flatten(0, 1), targets.flatten());
  auto loss_r = torch::cross_entropy_loss(reference->forward(tokens).flatten(0, 1), targets.flatten());
  loss_f.backward();
  loss_r.backward();
  EXPECT_NEAR(loss_f.item<double>(), loss_r.item<double>(), 1e-5);
  auto pf = fused->named_parameters();
  auto pr = reference->named_parameters();
  for (size_t i = 0; i < pf.size(); ++i)
    EXPECT_TRUE(torch::allclose(pf[i].value().grad(), pr[i].value().grad(), 1e-4, 1e-6)) << pf[i].key();
}

// GQA: the grouped reference equals attention with explicitly repeated K/V heads.
TEST(Attention, grouped_query_attention_matches_repeated_kv) {
  const int64_t B = 2, T = 7, H = 6, KV = 2, D = 4;
  auto qkv = torch::randn({B, T, (H + 2 * KV) * D}, torch::kDouble);
  auto rope = hnas::model::make_rope_table(T, D, 10000.0, torch::TensorOptions());
  rope.cos = rope.cos.to(torch::kDouble);
  rope.sin = rope.sin.to(torch::kDouble);
  auto out = hnas::model::reference::causal_attention(qkv, {H, KV, D}, rope);

  auto parts = qkv.split({H * D, KV * D, KV * D}, -1);
  auto q = hnas::model::reference::apply_rope(parts[0].view({B, T, H, D}).transpose(1, 2), rope);
  auto k = hnas::model::reference::apply_rope(parts[1].view({B, T, KV, D}).transpose(1, 2), rope);
  auto v = parts[2].view({B, T, KV, D}).transpose(1, 2);
  k = k.repeat_interleave(H / KV, 1);
  v = v.repeat_interleave(H / KV, 1);
  auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(D));
  scores = scores.masked_fill(torch::ones({T, T}, torch::kBool).triu(1), -INFINITY);
  auto expected = torch::matmul(torch::softmax(scores, -1), v).transpose(1, 2).reshape({B, T, H * D});
  EXPECT_TRUE(torch::allclose(out, expected, 1e-10, 1e-12));
}

TEST(Attention, rope_preserves_norms_and_relative_positions) {
  const int64_t T = 16, D = 8;
  auto rope = hnas::model::make_rope_table(T, D, 10000.0, torch::TensorOptions());
  auto q = torch::randn({1, 1, D}).expand({1, T, D}).contiguous();
  auto k = torch::randn({1, 1, D}).expand({1, T, D}).contiguous();
  auto rq = hnas::model::reference::apply_rope(q, rope);
  auto rk = hnas::model::reference::apply_rope(k, rope);
  EXPECT_TRUE(torch::allclose(rq.norm(2, -1), q.norm(2, -1), 1e-5));
  // <R_i q, R_j k> depends only on i - j.
  auto dot = [&](int64_t i, int64_t j) { return (rq[0][i] * rk[0][j]).sum().item<double>(); };
  EXPECT_NEAR(dot(5, 2), dot(9, 6), 1e-4);
  EXPECT_NEAR(dot(3, 3), dot(12, 12), 1e-4);
}

TEST(HybridModel, autoencoder_decodes_max_seq_len_positions) {
  ModelShape s = small_shape();
  s.backbone = Backbone::AutoEncoder;
  auto model = make_model("AM", s);
  auto tokens = torch::randint(0, 11, {4, 9}, torch::kLong);
  auto logits = model->forward(tokens);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{4, 9, 11}));
  // Only the last position's hidden state is decoded: a change there changes every output.
  auto changed = tokens.clone();
  changed.select(1, 8) = (changed.select(1, 8) + 1) % 11;
  EXPECT_FALSE(torch::allclose(model->forward(changed), logits));
}

TEST(HybridModel, tied_head_shares_the_embedding) {
  ModelShape s = small_shape();
  s.tie_embeddings = true;
  auto model = make_model("AM", s);
  for (const auto& item : model->named_parameters()) EXPECT_EQ(item.key().find("head"), std::string::npos);
  auto logits = model->forward(torch::randint(0, 11, {1, 5}, torch::kLong));
  EXPECT_EQ(logits.size(-1), 11);
}

}  // namespace

namespace {

// Prefill then token-by-token decoding with the KV cache gives the logits of one full
// forward pass, position by position; the cache holds only the attention layers.
TEST(KvCache, incremental_decoding_equals_the_full_forward) {
  torch::NoGradGuard no_grad;
  auto shape = small_shape();
  shape.tie_embeddings = true;
  auto model = make_model("AMMAAM", shape, Kernels::Reference, 3);
  model->eval();
  const auto tokens = torch::randint(0, shape.vocab_size, {2, 9}, torch::kInt64);
  const auto full = model->forward(tokens);
  auto cache = model->make_kv_cache(2, 9);
  ASSERT_EQ(cache.layers.size(), 3u);  // one per attention layer
  EXPECT_EQ(cache.bytes_per_token(), 3 * 2 * shape.num_kv_heads * shape.head_dim * 4);
  std::vector<torch::Tensor> pieces{model->forward(tokens.narrow(1, 0, 4), cache)};  // prefill 4
  for (int64_t t = 4; t < 9; ++t) pieces.push_back(model->forward(tokens.narrow(1, t, 1), cache));
  EXPECT_EQ(cache.length, 9);
  const auto incremental = torch::cat(pieces, 1);
  EXPECT_TRUE(torch::allclose(incremental, full, 1e-5, 1e-5))
      << "largest difference " << (incremental - full).abs().max().item<float>();
  // A full cache refuses more tokens.
  EXPECT_THROW(model->forward(tokens.narrow(1, 0, 1), cache), hnas::ConfigError);
}

}  // namespace
