// SPDX-License-Identifier: Apache-2.0
// Text to token ids, one document at a time, for hnas_make_shards: byte-level (bytes are
// ids 0..255, 256 starts a document) or SentencePiece (BPE or unigram; a model trained
// here or brought along, such as a Llama-2 tokenizer). Every document starts with the
// document token, as llm.c's and Llama's data do. A tokenizer's fingerprint (fnv1a of
// its model bytes) is written into every shard, so that training can refuse shards made
// by another tokenizer than the model's. Rank-local.
// Link it into tools only, never into a LibTorch target: Debian's libsentencepiece brings
// libprotobuf, whose static initialisation crashes beside LibTorch's (measured: hnas
// linked with it segfaults before main), so hnas itself reads only the shards' records.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hnas::tokenizer {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  /// "bytes" or "sentencepiece".
  virtual std::string kind() const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual uint64_t fingerprint() const = 0;
  /// The id that starts every document.
  virtual uint32_t document_token() const = 0;
  /// The ids of one document, document_token() first.
  virtual std::vector<uint32_t> encode_document(const std::string& text) const = 0;
  /// The text of `ids`; document tokens are dropped.
  virtual std::string decode(const std::vector<uint32_t>& ids) const = 0;
};

/// Bytes 0..255 are ids 0..255, and 256 starts a document: vocab_size 257.
std::unique_ptr<Tokenizer> byte_tokenizer();

/// Whether this build has SentencePiece (libsentencepiece); without it the two functions
/// below throw ConfigError saying so.
bool sentencepiece_available();

/// Loads a SentencePiece `.model` file. Throws InputError naming it when it is missing
/// or not a SentencePiece model, ConfigError when it has no BOS id (the document token).
std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& model_path);

struct SentencePieceTraining {
  int64_t vocab_size = 4096;
  std::string model_type = "bpe";  ///< bpe or unigram
  int threads = 1;
};

/// Trains a SentencePiece model on the lines of the `documents` (text files) and writes
/// `model_prefix`.model and .vocab. Llama-style settings: no normalization, white space
/// kept, digits split, byte fallback (no unknown token for any byte), BOS 1 starts a
/// document. Deterministic for the same documents. Throws ConfigError for a vocabulary
/// the text cannot fill, IoError when the model cannot be written.
std::unique_ptr<Tokenizer> train_sentencepiece(const std::vector<std::string>& documents,
                                               const SentencePieceTraining& options, const std::string& model_prefix);

}  // namespace hnas::tokenizer
