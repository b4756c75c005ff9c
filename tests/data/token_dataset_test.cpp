// SPDX-License-Identifier: Apache-2.0
// Token shards (.bin and HDF5), their validation errors, the train/validation split and
// the window sampler. Every test writes its own files into a fresh temporary directory.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "hnas/core/error.hpp"
#include "hnas/data/token_dataset.hpp"
#include "hnas/data/token_shard.hpp"
#include "hnas/io/h5.hpp"
#include "support/test_support.hpp"

namespace {

using hnas::testing::message_of;
using hnas::testing::TempDir;

using hnas::data::Batch;
using hnas::data::SamplerOptions;
using hnas::data::ShardRange;
using hnas::data::SplitMode;
using hnas::data::TokenDataset;
using hnas::data::Window;
using hnas::data::WindowSampler;

constexpr int64_t kVocab = 257;

// Fails the test unless `message` contains every fragment.
void expect_mentions(const std::string& message, const std::vector<std::string>& fragments) {
  for (const std::string& fragment : fragments) {
    EXPECT_NE(message.find(fragment), std::string::npos) << "missing \"" << fragment << "\" in: " << message;
  }
}

// Tokens that make every position recognisable: token i = (7 i + 3) mod 256.
std::vector<uint16_t> pattern_tokens(size_t n, unsigned salt = 0) {
  std::vector<uint16_t> tokens(n);
  for (size_t i = 0; i < n; ++i) tokens[i] = static_cast<uint16_t>((7 * i + 3 + salt) % 256);
  return tokens;
}

// A raw .bin file with any header, for the malformed cases.
void write_raw_shard(const std::string& path, int32_t magic, int32_t version, int32_t count,
                     const std::vector<unsigned char>& payload) {
  std::vector<int32_t> header(256, 0);
  header[0] = magic;
  header[1] = version;
  header[2] = count;
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(header.data()), 1024);
  out.write(reinterpret_cast<const char*>(payload.data()), static_cast<std::streamsize>(payload.size()));
}

std::vector<int64_t> read_all(const hnas::data::TokenShard& shard) {
  std::vector<int64_t> tokens(static_cast<size_t>(shard.size()));
  shard.read(0, shard.size(), tokens.data());
  return tokens;
}

std::vector<int64_t> widen(const std::vector<uint16_t>& tokens) {
  return std::vector<int64_t>(tokens.begin(), tokens.end());
}

// ---- .bin shards --------------------------------------------------------------------

TEST(BinShard, round_trips_through_the_writer) {
  TempDir dir;
  const std::string path = dir.file("a_train_000000.bin");
  std::vector<uint16_t> tokens = pattern_tokens(1000);
  tokens[10] = 256;  // end-of-text
  hnas::data::write_bin_shard(path, tokens);
  EXPECT_EQ(std::filesystem::file_size(path), 1024u + 2 * tokens.size());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  const auto shard = hnas::data::open_token_shard(path, kVocab);
  EXPECT_EQ(shard->name(), path);
  ASSERT_EQ(shard->size(), 1000);
  EXPECT_EQ(read_all(*shard), widen(tokens));
  std::vector<int64_t> slice(5);
  shard->read(8, 5, slice.data());
  EXPECT_EQ(slice, (std::vector<int64_t>{tokens[8], tokens[9], 256, tokens[11], tokens[12]}));

  hnas::data::write_bin_shard(dir.file("empty.bin"), {});
  EXPECT_EQ(hnas::data::open_token_shard(dir.file("empty.bin"), kVocab)->size(), 0);
}

TEST(ShardWriters, failures_are_io_errors_naming_the_path) {
  TempDir dir;
  const std::string bin = dir.file("no/such/dir/x.bin");
  expect_mentions(message_of<hnas::IoError>([&] {
                    hnas::data::write_bin_shard(bin, {1, 2});
                  }),
                  {bin, "No such file or directory"});
  const std::string h5 = dir.file("no/such/dir/x.h5");
  expect_mentions(message_of<hnas::IoError>([&] { hnas::data::write_h5_shard(h5, {1, 2}); }), {"no/such/dir/x.h5"});
}

TEST(BinShard, reads_version_2_uint32_tokens) {
  TempDir dir;
  const std::string path = dir.file("wide.bin");
  const std::vector<uint32_t> tokens{0, 70000, 5, 100000};
  std::vector<unsigned char> payload(tokens.size() * 4);
  std::memcpy(payload.data(), tokens.data(), payload.size());
  write_raw_shard(path, hnas::data::kShardMagic, 2, 4, payload);
  const auto shard = hnas::data::open_token_shard(path, 100001);
  EXPECT_EQ(read_all(*shard), (std::vector<int64_t>{0, 70000, 5, 100000}));
  expect_mentions(message_of<hnas::InputError>([&] { hnas::data::open_token_shard(path, 70000); }),
                  {path, "token 70000 at position 1", "[0, 70000)"});
}

TEST(BinShard, truncated_file_names_expected_and_actual_sizes) {
  TempDir dir;
  const std::string path = dir.file("cut.bin");
  hnas::data::write_bin_shard(path, pattern_tokens(100));
  std::filesystem::resize_file(path, 1024 + 150);
  expect_mentions(message_of<hnas::InputError>([&] { hnas::data::open_token_shard(path, kVocab); }),
                  {path, "truncated", "100 tokens", "1224 bytes", "1174 bytes"});

  std::filesystem::resize_file(path, 600);  // inside the header
  expect_mentions(message_of<hnas::InputError>([&] { hnas::data::open_token_shard(path, kVocab); }),
                  {path, "truncated", "1024-byte header", "600 bytes"});

  hnas::data::write_bin_shard(path, pattern_tokens(10));
  std::ofstream(path, std::ios::binary | std::ios::app) << "xx";
  expect_mentions(message_of<hnas::InputError>([&] { hnas::data::open_token_shard(path, kVocab); }),
                  {path, "1044 bytes", "1046 bytes"});
}

TEST(BinShard, wrong_magic_or_version_is_rejected) {
  TempDir dir;
  const std::string magic = dir.file("magic.bin");
  write_raw_shard(magic, 12345, 1, 0, {});
  expect_mentions(message_of<hnas::InputError>([&] { hnas::data::open_token_shard(magic, kVocab); }),
                  {magic, "not a token shard (magic 12345, expected 20240520)"});

  const std::string version = dir.file("version.bin");
  write_raw_shard(version, hnas::data::kShardMagic, 7, 0, {});
  expect_mentions(message_of<hnas::InputError>([&] { hnas::data::open_token_shard(version, kVocab); }),
                  {version, "unsupported token shard version 7"});

  const std::string text = dir.file("notes.bin");
  std::ofstream(text) << "hello world, this is text";
  expect_mentions(message_of<hnas::InputError>([&] { hnas::data::open_token_shard(text, kVocab); }),
                  {text, "not a token shard"});

  const std::string empty = dir.file("empty.bin");
  std::ofstream{empty};
  expect_mentions(message_of<hnas::InputError>([&] { hnas::data::open_token_shard(empty, kVocab); }),
                  {empty, "0 bytes"});
}

TEST(BinShard, missing_file_and_out_of_vocabulary_token) {
  TempDir dir;
  const std::string missing = dir.file("nope.bin");
  expect_mentions(message_of<hnas::InputError>([&] { hnas::data::open_token_shard(missing, kVocab); }),
                  {missing, "does not exist"});

  const std::string path = dir.file("big.bin");
  std::vector<uint16_t> tokens = pattern_tokens(200000);
  tokens[123456] = 300;
  hnas::data::write_bin_shard(path, tokens);
  expect_mentions(message_of<hnas::InputError>([&] { hnas::data::open_token_shard(path, kVocab); }),
                  {path, "token 300 at position 123456", "outside the vocabulary [0, 257)"});
  EXPECT_EQ(hnas::data::open_token_shard(path, 301)->size(), 200000);
  EXPECT_EQ(hnas::data::open_token_shard(path, /*vocab_size=*/0)->size(), 200000);
}

// ---- HDF5 shards --------------------------------------------------------------------

TEST(H5Shard, round_trips_with_default_and_named_datasets) {
  TempDir dir;
  const std::vector<uint16_t> tokens = pattern_tokens(70000, 5);
  const std::string plain = dir.file("a.h5");
  hnas::data::write_h5_shard(plain, tokens);
  const auto shard = hnas::data::open_token_shard(plain, kVocab);
  EXPECT_EQ(shard->name(), plain + ":/tokens");
  EXPECT_EQ(read_all(*shard), widen(tokens));
  std::vector<int64_t> window(4);
  shard->read(65534, 4, window.data());  // across a chunk boundary
  EXPECT_EQ(window, (std::vector<int64_t>{tokens[65534], tokens[65535], tokens[65536], tokens[65537]}));

  const std::string named = dir.file("b.hdf5");
  hnas::data::write_h5_shard(named, tokens, "/corpus/ids");
  EXPECT_EQ(read_all(*hnas::data::open_token_shard(named + ":/corpus/ids", kVocab)), widen(tokens));
  EXPECT_EQ(hnas::data::open_token_shard(named + ":corpus/ids", kVocab)->size(), 70000);

  // An unknown extension is recognised by the HDF5 signature.
  const std::string sniffed = dir.file("c.tok");
  std::filesystem::copy_file(plain, sniffed);
  EXPECT_EQ(hnas::data::parse_shard_spec(sniffed).format, hnas::data::ShardFormat::H5);
  EXPECT_EQ(hnas::data::open_token_shard(sniffed, kVocab)->size(), 70000);
}

TEST(H5Shard, bad_inputs_give_input_errors_naming_the_file) {
  TempDir dir;
  const std::string path = dir.file("t.h5");
  hnas::data::write_h5_shard(path, pattern_tokens(10));
  expect_mentions(message_of<hnas::InputError>([&] { hnas::data::open_token_shard(path + ":/wrong", kVocab); }),
                  {path, "no dataset \"/wrong\""});

  const std::string floats = dir.file("f.h5");
  {
    hnas::io::H5File file = hnas::io::create_file(floats);
    hnas::io::write_dataset_1d(file.get(), "/tokens", std::vector<float>{1.f, 2.f, 3.f});
    hnas::io::write_dataset_1d(file.get(), "/grid", std::vector<int32_t>{1, 2});
  }
  expect_mentions(message_of<hnas::InputError>([&] { hnas::data::open_token_shard(floats, kVocab); }),
                  {floats, "floating-point"});

  const std::string text = dir.file("junk.h5");
  std::ofstream(text) << "plain text, not HDF5";
  expect_mentions(message_of<hnas::InputError>([&] { hnas::data::open_token_shard(text, kVocab); }),
                  {text, "not an HDF5 file"});

  expect_mentions(message_of<hnas::InputError>([&] { hnas::data::open_token_shard(dir.file("absent.h5"), kVocab); }),
                  {dir.file("absent.h5")});

  const std::string ids = dir.file("ids.h5");
  {
    hnas::io::H5File file = hnas::io::create_file(ids);
    hnas::io::write_dataset_1d(file.get(), "/tokens", std::vector<int64_t>{4, 5, 999, 6});
    hnas::io::write_dataset_1d(file.get(), "/negative", std::vector<int32_t>{4, -1});
  }
  expect_mentions(message_of<hnas::InputError>([&] { hnas::data::open_token_shard(ids, kVocab); }),
                  {ids, "token 999 at position 2"});
  expect_mentions(message_of<hnas::InputError>([&] { hnas::data::open_token_shard(ids + ":/negative", kVocab); }),
                  {ids, "token -1 at position 1"});
}

// ---- dataset, split and sampler -----------------------------------------------------

struct Corpus {
  TempDir dir;
  std::vector<std::string> specs;
  std::vector<std::vector<uint16_t>> tokens;
};

// Three .bin shards and one HDF5 shard of different sizes.
std::unique_ptr<Corpus> make_corpus() {
  auto corpus = std::make_unique<Corpus>();
  const size_t sizes[] = {5000, 3000, 4000, 2500};
  for (size_t i = 0; i < 4; ++i) {
    corpus->tokens.push_back(pattern_tokens(sizes[i], static_cast<unsigned>(11 * i)));
    const bool h5 = i == 2;
    const std::string path = corpus->dir.file("s" + std::to_string(i) + (h5 ? ".h5" : ".bin"));
    if (h5) {
      hnas::data::write_h5_shard(path, corpus->tokens.back());
    } else {
      hnas::data::write_bin_shard(path, corpus->tokens.back());
    }
    corpus->specs.push_back(path);
  }
  return corpus;
}

SamplerOptions small_options(SplitMode mode) {
  SamplerOptions options;
  options.seq_len = 64;
  options.batch_size = 6;
  options.seed = 1234;
  options.split.mode = mode;
  options.split.val_shards = 1;
  options.split.val_fraction = 0.2;
  options.num_val_windows = 20;
  return options;
}

TEST(TokenDataset, mixes_bin_and_h5_shards) {
  const auto corpus = make_corpus();
  const TokenDataset data(corpus->specs, kVocab);
  ASSERT_EQ(data.num_shards(), 4u);
  EXPECT_EQ(data.num_tokens(), 5000 + 3000 + 4000 + 2500);
  EXPECT_EQ(data.read(2, 100, 3), widen({corpus->tokens[2].begin() + 100, corpus->tokens[2].begin() + 103}));
  EXPECT_EQ(data.read(3, 2497, 3), widen({corpus->tokens[3].end() - 3, corpus->tokens[3].end()}));
  EXPECT_THROW(TokenDataset({}, kVocab), hnas::ConfigError);
  expect_mentions(message_of<hnas::InputError>([&] { TokenDataset(corpus->specs, 200); }),
                  {corpus->specs[0], "outside the vocabulary [0, 200)"});
}

TEST(WindowSampler, same_seed_same_windows_and_other_seeds_differ) {
  const auto corpus = make_corpus();
  const TokenDataset data(corpus->specs, kVocab);
  SamplerOptions options = small_options(SplitMode::ByRange);
  const WindowSampler a(data, options);
  const WindowSampler b(data, options);
  options.seed = 99;
  const WindowSampler c(data, options);
  for (uint64_t step = 0; step < 10; ++step) {
    const Batch x = a.train_batch(step);
    EXPECT_EQ(x.windows, b.train_batch(step).windows) << "step " << step;
    EXPECT_EQ(x.inputs, b.train_batch(step).inputs) << "step " << step;
    EXPECT_NE(x.windows, c.train_batch(step).windows) << "step " << step;
    EXPECT_NE(x.windows, a.train_batch(step + 1).windows) << "step " << step;
    EXPECT_NE(x.windows, a.train_batch(step, /*stream=*/1).windows) << "step " << step;
  }
}

TEST(WindowSampler, targets_are_inputs_shifted_by_one) {
  const auto corpus = make_corpus();
  const TokenDataset data(corpus->specs, kVocab);
  const WindowSampler sampler(data, small_options(SplitMode::ByShard));
  for (uint64_t step = 0; step < 5; ++step) {
    const Batch batch = sampler.train_batch(step);
    ASSERT_EQ(batch.batch_size, 6);
    ASSERT_EQ(batch.seq_len, 64);
    ASSERT_EQ(batch.inputs.size(), 6u * 64u);
    ASSERT_EQ(batch.targets.size(), 6u * 64u);
    for (int64_t b = 0; b < batch.batch_size; ++b) {
      const Window& w = batch.windows[static_cast<size_t>(b)];
      const std::vector<uint16_t>& source = corpus->tokens[w.shard];
      for (int64_t t = 0; t < batch.seq_len; ++t) {
        const auto at = static_cast<size_t>(b * batch.seq_len + t);
        EXPECT_EQ(batch.inputs[at], source[static_cast<size_t>(w.offset + t)]) << "row " << b << " t " << t;
        EXPECT_EQ(batch.targets[at], source[static_cast<size_t>(w.offset + t + 1)]) << "row " << b << " t " << t;
        if (t + 1 < batch.seq_len) {
          EXPECT_EQ(batch.targets[at], batch.inputs[at + 1]);
        }
      }
    }
  }
}

bool inside(const Window& w, int64_t length, const std::vector<ShardRange>& ranges) {
  for (const ShardRange& r : ranges) {
    if (r.shard == w.shard && w.offset >= r.begin && w.offset + length <= r.end) return true;
  }
  return false;
}

void expect_windows_respect_split(SplitMode mode) {
  const auto corpus = make_corpus();
  const TokenDataset data(corpus->specs, kVocab);
  const WindowSampler sampler(data, small_options(mode));
  const auto& split = sampler.split();
  ASSERT_FALSE(split.train.empty());
  ASSERT_FALSE(split.validation.empty());
  // The ranges of the two splits never overlap.
  for (const ShardRange& t : split.train) {
    for (const ShardRange& v : split.validation) {
      EXPECT_TRUE(t.shard != v.shard || t.end <= v.begin || v.end <= t.begin)
          << "shard " << t.shard << " train [" << t.begin << ", " << t.end << ") val [" << v.begin << ", " << v.end
          << ")";
    }
  }
  const int64_t length = sampler.options().seq_len + 1;
  std::vector<bool> shard_seen(data.num_shards(), false);
  for (uint64_t step = 0; step < 200; ++step) {
    for (const Window& w : sampler.train_batch(step).windows) {
      ASSERT_TRUE(inside(w, length, split.train)) << "step " << step << " shard " << w.shard << " offset " << w.offset;
      shard_seen[w.shard] = true;
    }
  }
  for (const ShardRange& t : split.train) EXPECT_TRUE(shard_seen[t.shard]) << "shard " << t.shard;
  ASSERT_EQ(sampler.val_windows().size(), 20u);
  for (const Window& w : sampler.val_windows()) {
    EXPECT_TRUE(inside(w, length, split.validation)) << "shard " << w.shard << " offset " << w.offset;
  }
}

TEST(WindowSampler, windows_stay_inside_their_split_by_shard) { expect_windows_respect_split(SplitMode::ByShard); }

TEST(WindowSampler, windows_stay_inside_their_split_by_range) { expect_windows_respect_split(SplitMode::ByRange); }

TEST(WindowSampler, split_ranges_follow_the_options) {
  const auto corpus = make_corpus();
  const TokenDataset data(corpus->specs, kVocab);
  const WindowSampler by_shard(data, small_options(SplitMode::ByShard));
  ASSERT_EQ(by_shard.split().validation.size(), 1u);
  EXPECT_EQ(by_shard.split().validation[0].shard, 3u);
  EXPECT_EQ(by_shard.split().train.size(), 3u);
  const WindowSampler by_range(data, small_options(SplitMode::ByRange));
  ASSERT_EQ(by_range.split().validation.size(), 4u);
  EXPECT_EQ(by_range.split().train[0].end, 4000);  // 5000 tokens, 20 % validation
  EXPECT_EQ(by_range.split().validation[0].begin, 4000);
  EXPECT_EQ(by_range.split().validation[3].end, 2500);
}

TEST(WindowSampler, validation_set_is_fixed_across_calls_and_seeds) {
  const auto corpus = make_corpus();
  const TokenDataset data(corpus->specs, kVocab);
  SamplerOptions options = small_options(SplitMode::ByRange);
  const WindowSampler a(data, options);
  options.seed = 777;
  const WindowSampler b(data, options);
  EXPECT_EQ(a.val_windows(), b.val_windows());
  ASSERT_EQ(a.num_val_batches(), 4);  // 20 windows in batches of 6: 6, 6, 6, 2
  for (int64_t i = 0; i < a.num_val_batches(); ++i) {
    const Batch first = a.val_batch(i);
    const Batch again = a.val_batch(i);
    EXPECT_EQ(first.inputs, again.inputs) << "batch " << i;
    EXPECT_EQ(first.targets, b.val_batch(i).targets) << "batch " << i;
    EXPECT_EQ(first.batch_size, i < 3 ? 6 : 2) << "batch " << i;
  }
  EXPECT_THROW(a.val_batch(4), hnas::ConfigError);
  // Evenly spaced: 20 windows over 4 shards' validation ranges reach the last range.
  EXPECT_EQ(a.val_windows().back().shard, 3u);
}

TEST(WindowSampler, impossible_options_are_config_errors) {
  const auto corpus = make_corpus();
  const TokenDataset data(corpus->specs, kVocab);
  SamplerOptions options = small_options(SplitMode::ByShard);
  options.split.val_shards = 4;
  expect_mentions(message_of<hnas::ConfigError>([&] { WindowSampler(data, options); }), {"val_shards"});
  options = small_options(SplitMode::ByRange);
  options.split.val_fraction = 1.0;
  expect_mentions(message_of<hnas::ConfigError>([&] { WindowSampler(data, options); }), {"val_fraction"});
  options = small_options(SplitMode::ByShard);
  options.seq_len = 5000;
  expect_mentions(message_of<hnas::ConfigError>([&] { WindowSampler(data, options); }),
                  {"training split", "5001 tokens"});
  options.seq_len = 2600;  // fits shard 0 for training, not the 2500-token validation shard
  expect_mentions(message_of<hnas::ConfigError>([&] { WindowSampler(data, options); }), {"validation split"});
  options.num_val_windows = 0;
  EXPECT_TRUE(WindowSampler(data, options).val_windows().empty());
}

}  // namespace

// ---- the tokenizer a shard records ----

namespace tokenizer_record {

std::vector<uint32_t> wide_tokens(size_t n, uint32_t vocab) {
  std::vector<uint32_t> tokens(n);
  for (size_t i = 0; i < n; ++i) tokens[i] = static_cast<uint32_t>((7919u * i + 11u) % vocab);
  return tokens;
}

TEST(ShardTokenizer, bin_and_h5_shards_record_vocabulary_and_fingerprint) {
  TempDir dir;
  const hnas::data::ShardTokenizer made_by{512, 0x0123456789abcdefULL};
  const auto tokens = wide_tokens(1000, 512);
  hnas::data::write_bin_shard(dir.file("a.bin"), tokens, made_by);
  hnas::data::write_h5_shard(dir.file("a.h5"), tokens, made_by);
  for (const auto& spec : {dir.file("a.bin"), dir.file("a.h5")}) {
    const auto shard = hnas::data::open_token_shard(spec, 512);
    EXPECT_EQ(shard->tokenizer().vocab_size, 512) << spec;
    EXPECT_EQ(shard->tokenizer().fingerprint, made_by.fingerprint) << spec;
    std::vector<int64_t> back(tokens.size());
    shard->read(0, static_cast<int64_t>(tokens.size()), back.data());
    EXPECT_EQ(std::vector<int64_t>(tokens.begin(), tokens.end()), back) << spec;
  }
  // A shard written without a tokenizer (another tool's) says nothing.
  hnas::data::write_bin_shard(dir.file("plain.bin"), pattern_tokens(10));
  EXPECT_FALSE(hnas::data::open_token_shard(dir.file("plain.bin"), kVocab)->tokenizer().known());
}

TEST(ShardTokenizer, a_vocabulary_above_65536_ids_is_stored_as_uint32) {
  TempDir dir;
  const hnas::data::ShardTokenizer made_by{70000, 42};
  auto tokens = wide_tokens(500, 70000);
  tokens[17] = 69999;
  hnas::data::write_bin_shard(dir.file("wide.bin"), tokens, made_by);
  std::ifstream in(dir.file("wide.bin"), std::ios::binary);
  int32_t header[256];
  in.read(reinterpret_cast<char*>(header), sizeof header);
  EXPECT_EQ(header[1], hnas::data::kShardVersionU32);
  EXPECT_EQ(std::filesystem::file_size(dir.file("wide.bin")), 1024u + 4u * tokens.size());
  const auto shard = hnas::data::open_token_shard(dir.file("wide.bin"), 70000);
  int64_t token = 0;
  shard->read(17, 1, &token);
  EXPECT_EQ(token, 69999);
}

TEST(ShardTokenizer, shards_of_another_vocabulary_are_refused_naming_the_keys) {
  TempDir dir;
  hnas::data::write_bin_shard(dir.file("sp.bin"), wide_tokens(100, 200), {4096, 7});
  // Every id is below 257, so only the record can tell that these are not byte tokens.
  const auto message = message_of<hnas::ConfigError>([&] { hnas::data::open_token_shard(dir.file("sp.bin"), kVocab); });
  expect_mentions(
      message, {"sp.bin", "tokenizer of 4096 ids", "vocabulary is 257", "tokens.vocab_size", "extrapolate.vocab_size"});
}

TEST(ShardTokenizer, a_dataset_of_two_tokenizers_is_refused) {
  TempDir dir;
  hnas::data::write_bin_shard(dir.file("one.bin"), wide_tokens(100, 512), {512, 1});
  hnas::data::write_bin_shard(dir.file("two.bin"), wide_tokens(100, 512), {512, 2});
  hnas::data::write_bin_shard(dir.file("plain.bin"), pattern_tokens(100));
  EXPECT_NO_THROW(TokenDataset({dir.file("one.bin"), dir.file("plain.bin")}, 512));
  const auto message = message_of<hnas::ConfigError>([&] {
    TokenDataset({dir.file("one.bin"), dir.file("two.bin")}, 512);
  });
  expect_mentions(message, {"two tokenizers", "one.bin", "two.bin"});
  EXPECT_EQ(TokenDataset({dir.file("plain.bin"), dir.file("one.bin")}, 512).tokenizer().fingerprint, 1u);
}

}  // namespace tokenizer_record
