// SPDX-License-Identifier: Apache-2.0
// hnas_make_shards: text files to token shards for hnas, in llm.c `.bin` format or HDF5,
// byte-level or SentencePiece. Each input file is one document.
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/data/token_shard.hpp"
#include "hnas/tokenizer/tokenizer.hpp"

namespace {

using hnas::ConfigError;
using hnas::InputError;
using hnas::IoError;

constexpr const char* kUsage =
    "usage: hnas_make_shards --output-prefix PREFIX [options] FILE...\n"
    "\n"
    "Tokenizes text FILEs (one document each, in the order given) into token shards\n"
    "PREFIX_train_000000.bin, ..., PREFIX_val_000000.bin, ... Every document starts with\n"
    "the document token. The tokenizer is recorded in every shard and in\n"
    "PREFIX_tokenizer.txt (with PREFIX_tokenizer.model for SentencePiece).\n"
    "\n"
    "tokenizer:\n"
    "  --tokenizer bytes|sentencepiece  bytes: ids 0..255 are bytes, 256 starts a document,\n"
    "                          vocab_size 257 (default); sentencepiece: a subword model\n"
    "                          trained on the training documents, or --sp-model\n"
    "  --vocab-size N          SentencePiece pieces to train (default 4096)\n"
    "  --sp-model-type T       bpe (default, as Llama-2) or unigram\n"
    "  --sp-model FILE         encode with this SentencePiece .model instead of training one\n"
    "                          (a Llama-2-style tokenizer); implies --tokenizer sentencepiece\n"
    "  --threads N             SentencePiece training threads (default: the cores)\n"
    "\n"
    "split (one of):\n"
    "  --val-every K           every K-th document (the K-th, 2K-th, ...) is validation\n"
    "  --val-fraction F        the last fraction F in [0, 1) of the token stream (default 0.1)\n"
    "  --val-shards K          the last K shards of the stream\n"
    "\n"
    "output:\n"
    "  --output-prefix PREFIX  output path prefix (required; its directory must exist)\n"
    "  --shard-tokens N        maximum tokens per shard (default 100000000)\n"
    "  --format bin|h5         llm.c .bin shards (uint16; uint32 above 65536 ids, default) or\n"
    "                          HDF5 files with a dataset /tokens (.h5)\n"
    "  --help                  print this message\n";

struct Options {
  std::string output_prefix;
  int64_t shard_tokens = 100000000;
  double val_fraction = 0.1;
  int64_t val_shards = -1;  // -1: split by val_fraction
  int64_t val_every = 0;    // > 0: split by documents
  bool h5 = false;
  bool sentencepiece = false;
  std::string sp_model;
  hnas::tokenizer::SentencePieceTraining training;
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
  options.training.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  bool fraction_given = false, tokenizer_given = false;
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
    } else if (arg == "--val-every") {
      options.val_every = parse_int(arg, value);
      if (options.val_every < 2) usage_error("--val-every must be at least 2, got " + value);
    } else if (arg == "--format") {
      if (value != "bin" && value != "h5") usage_error("--format must be bin or h5, got \"" + value + "\"");
      options.h5 = value == "h5";
    } else if (arg == "--tokenizer") {
      if (value != "bytes" && value != "sentencepiece")
        usage_error("--tokenizer must be bytes or sentencepiece, got \"" + value + "\"");
      options.sentencepiece = value == "sentencepiece";
      tokenizer_given = true;
    } else if (arg == "--vocab-size") {
      options.training.vocab_size = parse_int(arg, value);
    } else if (arg == "--sp-model-type") {
      if (value != "bpe" && value != "unigram")
        usage_error("--sp-model-type must be bpe or unigram, got \"" + value + "\"");
      options.training.model_type = value;
    } else if (arg == "--sp-model") {
      options.sp_model = value;
    } else if (arg == "--threads") {
      options.training.threads = static_cast<int>(parse_int(arg, value));
      if (options.training.threads < 1) usage_error("--threads must be at least 1");
    } else {
      usage_error("unknown option " + arg);
    }
  }
  if (options.output_prefix.empty()) usage_error("--output-prefix is required");
  if (options.inputs.empty()) usage_error("no input files");
  if (options.shard_tokens < 1 || options.shard_tokens > INT32_MAX) {
    usage_error("--shard-tokens must be in [1, 2147483647]");
  }
  const int splits = int{fraction_given} + int{options.val_shards >= 0} + int{options.val_every > 0};
  if (splits > 1) usage_error("give one of --val-every, --val-fraction and --val-shards");
  if (options.val_fraction < 0.0 || options.val_fraction >= 1.0) usage_error("--val-fraction must be in [0, 1)");
  if (options.val_shards < -1) usage_error("--val-shards must not be negative");
  if (!options.sp_model.empty()) {
    if (tokenizer_given && !options.sentencepiece)
      usage_error("--sp-model is a SentencePiece model: drop --tokenizer bytes");
    options.sentencepiece = true;
  }
  if (options.val_every > static_cast<int64_t>(options.inputs.size()))
    usage_error("--val-every " + std::to_string(options.val_every) + " with " + std::to_string(options.inputs.size()) +
                " document(s) leaves no validation document");
  return options;
}

// Collects the token stream and cuts it into numbered shards of one split.
class ShardWriter {
 public:
  ShardWriter(const Options& options, const char* split, hnas::data::ShardTokenizer tokenizer)
      : options_(options), split_(split), tokenizer_(tokenizer) {}

  void add(uint32_t token) {
    buffer_.push_back(token);
    if (static_cast<int64_t>(buffer_.size()) == options_.shard_tokens) flush();
  }

  void flush() {
    if (buffer_.empty()) return;
    char index[16];
    std::snprintf(index, sizeof index, "%06d", num_shards_);
    const std::string path = options_.output_prefix + "_" + split_ + "_" + index + (options_.h5 ? ".h5" : ".bin");
    if (options_.h5) {
      hnas::data::write_h5_shard(path, buffer_, tokenizer_);
    } else {
      hnas::data::write_bin_shard(path, buffer_, tokenizer_);
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
  hnas::data::ShardTokenizer tokenizer_;
  std::vector<uint32_t> buffer_;
  int num_shards_ = 0;
  int64_t num_tokens_ = 0;
};

std::string read_document(const std::string& path) {
  struct stat info {};
  HNAS_CHECK(::stat(path.c_str(), &info) == 0, InputError, "cannot read " << path << ": " << std::strerror(errno));
  HNAS_CHECK(S_ISREG(info.st_mode), InputError, path << " is not a regular file");
  std::ifstream in(path, std::ios::binary);
  HNAS_CHECK(in, InputError, "cannot open " << path << ": " << std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  HNAS_CHECK(in.good() || in.eof(), InputError, "error while reading " << path);
  return text.str();
}

bool is_validation_document(const Options& options, size_t index) {
  return options.val_every > 0 && static_cast<int64_t>(index % options.val_every) == options.val_every - 1;
}

std::unique_ptr<hnas::tokenizer::Tokenizer> make_tokenizer(const Options& options, std::string& model_file) {
  if (!options.sentencepiece) return hnas::tokenizer::byte_tokenizer();
  model_file = options.output_prefix + "_tokenizer.model";
  if (!options.sp_model.empty()) {
    auto tokenizer = hnas::tokenizer::load_sentencepiece(options.sp_model);
    std::ifstream in(options.sp_model, std::ios::binary);
    std::ofstream out(model_file, std::ios::binary | std::ios::trunc);
    out << in.rdbuf();
    HNAS_CHECK(out.good(), IoError, "cannot write " << model_file);
    return tokenizer;
  }
  // Trained on the training documents only: validation text stays unseen (with a stream
  // split the validation tail is part of the documents, and so of the training text).
  std::vector<std::string> training_documents;
  for (size_t i = 0; i < options.inputs.size(); ++i)
    if (!is_validation_document(options, i)) training_documents.push_back(options.inputs[i]);
  std::printf("training a SentencePiece %s model of %lld pieces on %zu document(s)\n",
              options.training.model_type.c_str(), static_cast<long long>(options.training.vocab_size),
              training_documents.size());
  std::fflush(stdout);
  return hnas::tokenizer::train_sentencepiece(training_documents, options.training,
                                              options.output_prefix + "_tokenizer");
}

// PREFIX_tokenizer.txt: what made the shards, for people and for `hnas pretrain`'s record.
void write_tokenizer_record(const Options& options, const hnas::tokenizer::Tokenizer& tokenizer,
                            const std::string& model_file, size_t train_documents, size_t val_documents) {
  const std::string path = options.output_prefix + "_tokenizer.txt";
  std::ofstream out(path, std::ios::trunc);
  char fingerprint[17];
  std::snprintf(fingerprint, sizeof fingerprint, "%016llx", static_cast<unsigned long long>(tokenizer.fingerprint()));
  out << "# hnas_make_shards: the tokenizer of the shards " << options.output_prefix << "_*\n"
      << "kind = " << tokenizer.kind() << "\n"
      << "vocab_size = " << tokenizer.vocab_size() << "\n"
      << "fingerprint = " << fingerprint << "\n"
      << "document_token = " << tokenizer.document_token() << "\n"
      << "model = " << model_file << "\n"
      << "documents = " << train_documents + val_documents << "\n"
      << "split = "
      << (options.val_every > 0 ? "every " + std::to_string(options.val_every) + "th document is validation (" +
                                      std::to_string(val_documents) + ")"
                                : std::string("the end of the token stream"))
      << "\n";
  HNAS_CHECK(out.good(), IoError, "cannot write " << path);
}

int run(const Options& options) {
  std::string model_file;
  const auto tokenizer = make_tokenizer(options, model_file);
  const hnas::data::ShardTokenizer recorded{tokenizer->vocab_size(), tokenizer->fingerprint()};

  // A stream split needs the total first: a counting pass (bytes: from the file sizes).
  int64_t num_train = std::numeric_limits<int64_t>::max();
  if (options.val_every == 0) {
    int64_t total = 0;
    for (const std::string& input : options.inputs) {
      if (tokenizer->kind() == "bytes") {
        struct stat info {};
        HNAS_CHECK(::stat(input.c_str(), &info) == 0, InputError,
                   "cannot read " << input << ": " << std::strerror(errno));
        total += 1 + static_cast<int64_t>(info.st_size);
      } else {
        total += static_cast<int64_t>(tokenizer->encode_document(read_document(input)).size());
      }
    }
    num_train = total - static_cast<int64_t>(std::llround(static_cast<double>(total) * options.val_fraction));
    if (options.val_shards >= 0) {
      const int64_t num_shards = (total + options.shard_tokens - 1) / options.shard_tokens;
      HNAS_CHECK(options.val_shards < num_shards, ConfigError,
                 "the input makes " << num_shards << " shard(s) of at most " << options.shard_tokens << " tokens; "
                                    << options.val_shards << " validation shard(s) would leave none for training");
      num_train = (num_shards - options.val_shards) * options.shard_tokens;
    }
  }

  ShardWriter train(options, "train", recorded);
  ShardWriter val(options, "val", recorded);
  int64_t position = 0;
  size_t val_documents = 0;
  for (size_t i = 0; i < options.inputs.size(); ++i) {
    const bool validation = is_validation_document(options, i);
    val_documents += validation;
    for (uint32_t token : tokenizer->encode_document(read_document(options.inputs[i]))) {
      const bool to_train = options.val_every > 0 ? !validation : position++ < num_train;
      (to_train ? train : val).add(token);
    }
  }
  train.flush();
  val.flush();
  write_tokenizer_record(options, *tokenizer, model_file, options.inputs.size() - val_documents, val_documents);
  std::printf("%lld train tokens in %d shard(s), %lld validation tokens in %d shard(s), vocab_size %lld (%s)\n",
              static_cast<long long>(train.num_tokens()), train.num_shards(), static_cast<long long>(val.num_tokens()),
              val.num_shards(), static_cast<long long>(tokenizer->vocab_size()), tokenizer->kind().c_str());
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
