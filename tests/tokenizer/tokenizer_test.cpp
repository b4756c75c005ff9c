// SPDX-License-Identifier: Apache-2.0
// The tokenizers of hnas_make_shards: byte-level ids, and SentencePiece trained here on a
// generated English-like text: exact round trips (white space, code, non-ASCII), the
// document token first, deterministic training, a saved model that encodes the same,
// and bad models or settings refused with their name.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "hnas/core/error.hpp"
#include "hnas/tokenizer/tokenizer.hpp"
#include "support/test_support.hpp"

namespace {

using hnas::testing::message_of;
using hnas::testing::TempDir;
namespace tk = hnas::tokenizer;

// Sentences of a small English vocabulary with punctuation, numbers and code lines:
// enough text for a few hundred pieces, the same on every run.
std::string generated_text(uint64_t seed, int lines) {
  static const char* words[] = {"the",  "model", "layer",   "attention", "learns", "a",     "token",
                                "of",   "each",  "search",  "finds",     "best",   "MLP",   "with",
                                "data", "text",  "and",     "is",        "when",   "which", "train",
                                "loss", "falls", "quickly", "slowly",    "under",  "over",  "many"};
  std::mt19937_64 rng(seed);
  std::ostringstream out;
  for (int i = 0; i < lines; ++i) {
    if (i % 7 == 3) {
      out << "    for i in range(" << rng() % 100 << "):\n        x[i] = f(x[i - 1]) + " << rng() % 10 << "\n";
      continue;
    }
    const int n = 4 + static_cast<int>(rng() % 10);
    for (int w = 0; w < n; ++w) out << (w ? " " : "") << words[rng() % (sizeof words / sizeof *words)];
    out << (i % 3 ? "." : ", 2026.") << "\n";
  }
  return out.str();
}

std::string write_file(const TempDir& dir, const std::string& name, const std::string& text) {
  const std::string path = dir.file(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(ByteTokenizer, bytes_are_ids_and_256_starts_a_document) {
  const auto bytes = tk::byte_tokenizer();
  EXPECT_EQ(bytes->vocab_size(), 257);
  const std::string text = "a\xc3\xa9\n";
  const auto ids = bytes->encode_document(text);
  EXPECT_EQ(ids, (std::vector<uint32_t>{256, 'a', 0xc3, 0xa9, '\n'}));
  EXPECT_EQ(bytes->decode(ids), text);
  EXPECT_NE(bytes->fingerprint(), 0u);
}

class SentencePiece : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!tk::sentencepiece_available()) GTEST_SKIP() << "built without SentencePiece";
    corpus_ = {write_file(dir_, "a.txt", generated_text(1, 1500)), write_file(dir_, "b.txt", generated_text(2, 1500))};
  }
  std::unique_ptr<tk::Tokenizer> train(const std::string& prefix, int64_t vocab = 400,
                                       const std::string& type = "bpe") {
    tk::SentencePieceTraining options;
    options.vocab_size = vocab;
    options.model_type = type;
    return tk::train_sentencepiece(corpus_, options, dir_.file(prefix));
  }
  TempDir dir_;
  std::vector<std::string> corpus_;
};

TEST_F(SentencePiece, round_trips_text_exactly_with_the_document_token_first) {
  const auto sp = train("m");
  EXPECT_EQ(sp->kind(), "sentencepiece");
  EXPECT_EQ(sp->vocab_size(), 400);
  EXPECT_EQ(sp->document_token(), 1u);
  // Multiple spaces, tabs, blank lines, code indentation, digits and characters the
  // training text never had (byte fallback): all come back as they were.
  const std::string document =
      "The model learns  quickly.\n\n\tdef f(x):\n        return x * 31415 # \xc3\xa9t\xc3\xa9 \xe2\x9c\x93\n";
  const auto ids = sp->encode_document(document);
  ASSERT_GT(ids.size(), 2u);
  EXPECT_EQ(ids.front(), sp->document_token());
  EXPECT_LT(ids.size(), document.size());  // subwords: fewer ids than bytes
  for (uint32_t id : ids) EXPECT_LT(id, 400u);
  EXPECT_EQ(sp->decode(ids), document);
  // Frequent words are single pieces.
  EXPECT_LE(sp->encode_document("attention").size(), 3u);
}

TEST_F(SentencePiece, training_is_deterministic_and_a_saved_model_encodes_the_same) {
  const auto first = train("one");
  const auto second = train("two");
  EXPECT_EQ(first->fingerprint(), second->fingerprint());
  EXPECT_EQ(file_bytes(dir_.file("one.model")), file_bytes(dir_.file("two.model")));
  const auto loaded = tk::load_sentencepiece(dir_.file("one.model"));
  EXPECT_EQ(loaded->fingerprint(), first->fingerprint());
  const std::string text = generated_text(9, 20);
  EXPECT_EQ(loaded->encode_document(text), first->encode_document(text));
  // Another vocabulary is another tokenizer.
  EXPECT_NE(train("three", 500)->fingerprint(), first->fingerprint());
  EXPECT_EQ(train("uni", 350, "unigram")->vocab_size(), 350);
}

TEST_F(SentencePiece, bad_models_and_settings_are_refused_by_name) {
  const std::string not_a_model = write_file(dir_, "fake.model", "not a protobuf");
  const auto message = message_of<hnas::InputError>([&] { tk::load_sentencepiece(not_a_model); });
  EXPECT_NE(message.find("fake.model"), std::string::npos) << message;
  EXPECT_NE(message_of<hnas::Error>([&] { tk::load_sentencepiece(dir_.file("missing.model")); }).find("missing.model"),
            std::string::npos);
  EXPECT_NE(message_of<hnas::ConfigError>([&] { train("small", 100); }).find("at least 300"), std::string::npos);
  EXPECT_NE(message_of<hnas::ConfigError>([&] { train("type", 400, "wordpiece"); }).find("bpe or unigram"),
            std::string::npos);
}

}  // namespace
