// SPDX-License-Identifier: Apache-2.0
// hnas_make_shards: byte-level tokenizer that turns text files into token shards for
// hnas, in llm.c `.bin` format (uint16) or HDF5. Each input file is one document.
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/data/token_shard.hpp"

namespace {

// Bytes are tokens 0..255; 256 precedes every document, as llm.c's preprocessing puts
// the end-of-text token before each document, so the vocabulary has 257 entries.
constexpr uint16_t kEndOfText = 256;
constexpr int64_t kVocabSize = 257;

constexpr const char* kUsage =
    "usage: hnas_make_shards --output-prefix PREFIX [options] FILE...\n"
    "\n"
    "Byte-level tokenization of text FILEs (one document each; bytes are tokens 0..255 and\n"
    "token 256 precedes every document, vocab_size = 257) into token shards named\n"
    "PREFIX_train_000000.bin, ..., PREFIX_val_000000.bin, ...\n"
    "\n"
    "options:\n"
    "  --output-prefix PREFIX  output path prefix (required; its directory must exist)\n"
    "  --shard-tokens N        maximum tokens per shard (default 100000000)\n"
    "  --val-fraction F        last fraction F in [0, 1) of the token stream is validation\n"
    "                          (default 0.1)\n"
    "  --val-shards K          instead: the last K shards of the stream are validation\n"
    "  --format bin|h5         llm.c .bin shards (uint16, default) or HDF5 files with a\n"
    "                          uint16 dataset /tokens (.h5)\n"
    "  --help                  print this message\n";

struct Options {
  std::string output_prefix;
  int64_t shard_tokens = 100000000;
  double val_fraction = 0.1;
  int64_t val_shards = -1;  // -1: split by val_fraction
  bool h5 = false;
  std::vector<std::string> inputs;
};

[[noreturn]] void usage_error(const std::string& problem) {
  std::fprintf(stderr, "hnas_make_shards: %s\n\n%s", problem.c_str(), kUsage);
  std::exit(hnas::kExitConfig);
}

int64_t parse_int(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0) usage_error(flag + " needs an integer, got \"" + text + "\"");
  return value;
}

double parse_double(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(value)) {
    usage_error(flag + " needs a number, got \"" + text + "\"");
  }
  return value;
}

Options parse_arguments(int argc, char** argv) {
  Options options;
  bool fraction_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(hnas::kExitOk);
    }
    if (arg.rfind("--", 0) != 0) {
      options.inputs.push_back(arg);
      continue;
    }
    std::string value;
    const size_t equals = arg.find('=');
    if (equals != std::string::npos) {
      value = arg.substr(equals + 1);
      arg.resize(equals);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      usage_error(arg + " needs a value");
    }
    if (arg == "--output-prefix") {
      options.output_prefix = value;
    } else if (arg == "--shard-tokens") {
      options.shard_tokens = parse_int(arg, value);
    } else if (arg == "--val-fraction") {
      options.val_fraction = parse_double(arg, value);
      fraction_given = true;
    } else if (arg == "--val-shards") {
      options.val_shards = parse_int(arg, value);
    } else if (arg == "--format") {
      if (value != "bin" && value != "h5") usage_error("--format must be bin or h5, got \"" + value + "\"");
      options.h5 = value == "h5";
    } else {
      usage_error("unknown option " + arg);
    }
  }
  if (options.output_prefix.empty()) usage_error("--output-prefix is required");
  if (options.inputs.empty()) usage_error("no input files");
  if (options.shard_tokens < 1 || options.shard_tokens > INT32_MAX) {
    usage_error("--shard-tokens must be in [1, 2147483647]");
  }
  if (fraction_given && options.val_shards >= 0) usage_error("give --val-fraction or --val-shards, not both");
  if (options.val_fraction < 0.0 || options.val_fraction >= 1.0) usage_error("--val-fraction must be in [0, 1)");
  if (options.val_shards < -1) usage_error("--val-shards must not be negative");
  return options;
}

// Collects the token stream and cuts it into numbered shards of one split.
class ShardWriter {
 public:
  ShardWriter(const Options& options, const char* split) : options_(options), split_(split) {}

  void add(uint16_t token) {
    buffer_.push_back(token);
    if (static_cast<int64_t>(buffer_.size()) == options_.shard_tokens) flush();
  }

  void flush() {
    if (buffer_.empty()) return;
    char index[16];
    std::snprintf(index, sizeof index, "%06d", num_shards_);
    const std::string path = options_.output_prefix + "_" + split_ + "_" + index + (options_.h5 ? ".h5" : ".bin");
    if (options_.h5) {
      hnas::data::write_h5_shard(path, buffer_);
    } else {
      hnas::data::write_bin_shard(path, buffer_);
    }
    std::printf("wrote %s (%zu tokens)\n", path.c_str(), buffer_.size());
    num_tokens_ += static_cast<int64_t>(buffer_.size());
    ++num_shards_;
    buffer_.clear();
  }

  int num_shards() const { return num_shards_; }
  int64_t num_tokens() const { return num_tokens_; }

 private:
  const Options& options_;
  const char* split_;
  std::vector<uint16_t> buffer_;
  int num_shards_ = 0;
  int64_t num_tokens_ = 0;
};

int run(const Options& options) {
  // The split point is fixed before reading, from the file sizes: one token per byte plus
  // one end-of-text token per document.
  int64_t total = 0;
  for (const std::string& input : options.inputs) {
    struct stat info {};
    HNAS_CHECK(::stat(input.c_str(), &info) == 0, InputError, "cannot read " << input << ": " << std::strerror(errno));
    HNAS_CHECK(S_ISREG(info.st_mode), InputError, input << " is not a regular file");
    total += 1 + static_cast<int64_t>(info.st_size);
  }
  int64_t num_train = total - static_cast<int64_t>(std::llround(static_cast<double>(total) * options.val_fraction));
  if (options.val_shards >= 0) {
    const int64_t num_shards = (total + options.shard_tokens - 1) / options.shard_tokens;
    HNAS_CHECK(options.val_shards < num_shards, ConfigError,
               "the input makes " << num_shards << " shard(s) of at most " << options.shard_tokens << " tokens; "
                                  << options.val_shards << " validation shard(s) would leave none for training");
    num_train = (num_shards - options.val_shards) * options.shard_tokens;
  }

  ShardWriter train(options, "train");
  ShardWriter val(options, "val");
  int64_t position = 0;
  auto emit = [&](uint16_t token) { (position++ < num_train ? train : val).add(token); };
  std::vector<unsigned char> chunk(1 << 20);
  for (const std::string& input : options.inputs) {
    std::FILE* file = std::fopen(input.c_str(), "rb");
    HNAS_CHECK(file != nullptr, InputError, "cannot open " << input << ": " << std::strerror(errno));
    emit(kEndOfText);
    size_t got = 0;
    while ((got = std::fread(chunk.data(), 1, chunk.size(), file)) > 0) {
      for (size_t i = 0; i < got; ++i) emit(chunk[i]);
    }
    const bool failed = std::ferror(file) != 0;
    std::fclose(file);
    HNAS_CHECK(!failed, InputError, "error while reading " << input);
  }
  train.flush();
  val.flush();
  std::printf("%lld train tokens in %d shard(s), %lld validation tokens in %d shard(s), vocab_size %lld\n",
              static_cast<long long>(train.num_tokens()), train.num_shards(), static_cast<long long>(val.num_tokens()),
              val.num_shards(), static_cast<long long>(kVocabSize));
  return hnas::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse_arguments(argc, argv);
  try {
    return run(options);
  } catch (const hnas::Error& e) {
    std::fprintf(stderr, "hnas_make_shards: error: %s\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hnas_make_shards: error: %s\n", e.what());
    return hnas::kExitInternal;
  }
}
