// SPDX-License-Identifier: Apache-2.0
#include "hnas/tokenizer/tokenizer.hpp"

#include <fstream>
#include <sstream>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/files.hpp"
#include "hnas/core/hash.hpp"

#if HNAS_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#endif

namespace hnas::tokenizer {
namespace {

constexpr uint32_t kByteDocumentToken = 256;

class ByteTokenizer final : public Tokenizer {
 public:
  std::string kind() const override { return "bytes"; }
  int64_t vocab_size() const override { return 257; }
  uint64_t fingerprint() const override { return fnv1a("hnas byte-level tokenizer: ids 0-255 bytes, 256 document"); }
  uint32_t document_token() const override { return kByteDocumentToken; }
  std::vector<uint32_t> encode_document(const std::string& text) const override {
    std::vector<uint32_t> ids;
    ids.reserve(text.size() + 1);
    ids.push_back(kByteDocumentToken);
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  std::string decode(const std::vector<uint32_t>& ids) const override {
    std::string text;
    for (uint32_t id : ids)
      if (id < 256) text += static_cast<char>(id);
    return text;
  }
};

std::string read_whole_file(const std::string& path) {
  require_readable_file(path, "file");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  HNAS_CHECK(in.good() || in.eof(), InputError, "cannot read " << printable(path));
  return text.str();
}

#if HNAS_HAVE_SENTENCEPIECE

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& serialized, const std::string& source) {
    const auto status = processor_.LoadFromSerializedProto(serialized);
    HNAS_CHECK(status.ok(), InputError,
               printable(source) << " is not a SentencePiece model (" << status.ToString() << ")");
    HNAS_CHECK(processor_.bos_id() >= 0, ConfigError,
               printable(source) << " has no BOS piece, which hnas needs to start every document");
    fingerprint_ = fnv1a(serialized);
  }
  std::string kind() const override { return "sentencepiece"; }
  int64_t vocab_size() const override { return processor_.GetPieceSize(); }
  uint64_t fingerprint() const override { return fingerprint_; }
  uint32_t document_token() const override { return static_cast<uint32_t>(processor_.bos_id()); }
  int piece_count() const { return processor_.GetPieceSize(); }
  std::string piece(int id) const { return processor_.IdToPiece(id); }
  float score(int id) const { return processor_.GetScore(id); }
  std::vector<uint32_t> encode_document(const std::string& text) const override {
    std::vector<int> pieces;
    const auto status = processor_.Encode(text, &pieces);
    HNAS_CHECK(status.ok(), InputError, "SentencePiece could not encode a document: " << status.ToString());
    std::vector<uint32_t> ids;
    ids.reserve(pieces.size() + 1);
    ids.push_back(document_token());
    for (int id : pieces) ids.push_back(static_cast<uint32_t>(id));
    return ids;
  }
  std::string decode(const std::vector<uint32_t>& ids) const override {
    std::vector<int> pieces;
    for (uint32_t id : ids)
      if (id != document_token()) pieces.push_back(static_cast<int>(id));
    std::string text;
    const auto status = processor_.Decode(pieces, &text);
    HNAS_CHECK(status.ok(), InputError, "SentencePiece could not decode: " << status.ToString());
    return text;
  }

 private:
  sentencepiece::SentencePieceProcessor processor_;
  uint64_t fingerprint_ = 0;
};

// The training text: every line of every document, in order.
class DocumentLines final : public sentencepiece::SentenceIterator {
 public:
  explicit DocumentLines(const std::vector<std::string>& documents) : documents_(documents) { advance(); }
  bool done() const override { return done_; }
  void Next() override { advance(); }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void advance() {
    while (true) {
      if (stream_ && std::getline(stream_, line_)) {
        if (!line_.empty()) return;
        continue;
      }
      if (next_ == documents_.size()) {
        done_ = true;
        return;
      }
      stream_ = std::istringstream(read_whole_file(documents_[next_++]));
    }
  }
  const std::vector<std::string>& documents_;
  size_t next_ = 0;
  std::istringstream stream_;
  std::string line_;
  bool done_ = false;
};

#endif

}  // namespace

std::unique_ptr<Tokenizer> byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

#if HNAS_HAVE_SENTENCEPIECE

bool sentencepiece_available() { return true; }

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& model_path) {
  return std::make_unique<SentencePieceTokenizer>(read_whole_file(model_path), model_path);
}

std::unique_ptr<Tokenizer> train_sentencepiece(const std::vector<std::string>& documents,
                                               const SentencePieceTraining& o, const std::string& model_prefix) {
  HNAS_CHECK(o.model_type == "bpe" || o.model_type == "unigram", ConfigError,
             "SentencePiece model type must be bpe or unigram, got " << printable(o.model_type));
  HNAS_CHECK(
      o.vocab_size >= 300, ConfigError,
      "a SentencePiece vocabulary needs at least 300 pieces (256 byte pieces and the specials), got " << o.vocab_size);
  sentencepiece::SetRandomGeneratorSeed(1);
  std::ostringstream args;
  args << "--vocab_size=" << o.vocab_size << " --model_type=" << o.model_type
       << " --character_coverage=0.9995 --normalization_rule_name=identity --remove_extra_whitespaces=false"
       << " --split_digits=true --byte_fallback=true --allow_whitespace_only_pieces=true"
       << " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --input_sentence_size=0 --max_sentence_length=16384"
       << " --num_threads=" << std::max(1, o.threads) << " --minloglevel=2";
  DocumentLines lines(documents);
  std::string serialized;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args.str(), &lines, &serialized);
  HNAS_CHECK(status.ok(), ConfigError, "SentencePiece training failed: " << status.ToString());
  auto tokenizer = std::make_unique<SentencePieceTokenizer>(serialized, "the trained model");
  const std::string model_path = model_prefix + ".model";
  std::ofstream model(model_path, std::ios::binary | std::ios::trunc);
  model.write(serialized.data(), static_cast<std::streamsize>(serialized.size()));
  HNAS_CHECK(model.good(), IoError, "cannot write " << printable(model_path));
  std::ofstream vocab(model_prefix + ".vocab", std::ios::trunc);  // one piece and its score a line, for people
  for (int id = 0; id < tokenizer->piece_count(); ++id)
    vocab << tokenizer->piece(id) << "\t" << tokenizer->score(id) << "\n";
  return tokenizer;
}

#else

bool sentencepiece_available() { return false; }

[[noreturn]] void no_sentencepiece() {
  throw ConfigError(
      "this build has no SentencePiece: install libsentencepiece-dev (tools/install_deps.sh) and rebuild");
}

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string&) { no_sentencepiece(); }

std::unique_ptr<Tokenizer> train_sentencepiece(const std::vector<std::string>&, const SentencePieceTraining&,
                                               const std::string&) {
  no_sentencepiece();
}

#endif

}  // namespace hnas::tokenizer
