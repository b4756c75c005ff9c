// SPDX-License-Identifier: Apache-2.0
// One file of pre-tokenized text: an llm.c/nanoGPT `.bin` shard (memory-mapped) or a 1-D
// integer dataset in an HDF5 file (read on demand). Opening validates the file completely,
// so a shard that opens can be read without further format errors.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hnas::data {

/// The `.bin` shard format of llm.c (dev/data) and nanoGPT-style loaders: a header of 256
/// little-endian int32, then the tokens, little-endian.
///   header[0] = kShardMagic, header[1] = version, header[2] = number of tokens.
/// Version 1 stores uint16 tokens (GPT-2-sized vocabularies). Version 2, an hnas extension
/// for vocabularies above 65536, stores uint32 tokens; hnas writes it only for those.
/// hnas also records the tokenizer in header slots llm.c leaves zero (other readers ignore
/// them): header[3] = kShardTokenizerTag, header[4] = vocabulary size, header[5..6] = the
/// tokenizer fingerprint (low, high 32 bits).
inline constexpr int32_t kShardMagic = 20240520;
inline constexpr int32_t kShardVersionU16 = 1;
inline constexpr int32_t kShardVersionU32 = 2;
inline constexpr int64_t kShardHeaderInts = 256;
inline constexpr int64_t kShardHeaderBytes = kShardHeaderInts * 4;
inline constexpr int32_t kShardTokenizerTag = 0x686e6173;  // "hnas"

/// The tokenizer that made a shard's tokens, as the shard records it; vocab_size 0 when
/// the shard does not say (written by another tool).
struct ShardTokenizer {
  int64_t vocab_size = 0;
  uint64_t fingerprint = 0;  ///< fnv1a of the tokenizer model's bytes (see data/tokenizer.hpp)
  bool known() const { return vocab_size > 0; }
};

/// Dataset read when an HDF5 shard spec names none.
inline constexpr const char* kDefaultTokenDataset = "/tokens";

enum class ShardFormat { Bin, H5 };

/// A parsed shard spec (see parse_shard_spec).
struct ShardSpec {
  std::string path;
  std::string dataset;  ///< HDF5 only: absolute dataset path
  ShardFormat format = ShardFormat::Bin;
};

/// Interprets a shard spec:
///   "dir/x.bin"                  -> .bin shard
///   "dir/x.h5" / "dir/x.hdf5"    -> HDF5 shard, dataset "/tokens"
///   "dir/x.h5:/group/ids"        -> HDF5 shard, dataset "/group/ids"
/// Any other name is classified by its first bytes (HDF5 signature or not), so the file
/// must exist. Throws InputError naming the spec when it is empty or malformed.
ShardSpec parse_shard_spec(const std::string& spec);

/// A validated, read-only token sequence stored in one file. Reads are const; for HDF5
/// shards they call into the (not thread-safe) HDF5 library, so use one thread per shard.
class TokenShard {
 public:
  virtual ~TokenShard() = default;
  /// The spec the shard was opened with ("x.bin", "x.h5:/tokens"), for messages.
  virtual const std::string& name() const = 0;
  /// Number of tokens.
  virtual int64_t size() const = 0;
  /// Copies tokens [offset, offset + count) into out[0, count). The range must lie inside
  /// the shard (checked: InternalError otherwise). HDF5 read failures throw InputError.
  virtual void read(int64_t offset, int64_t count, int64_t* out) const = 0;
  /// The tokenizer the shard records (unknown for shards written by other tools).
  virtual ShardTokenizer tokenizer() const = 0;
};

/// Opens and validates one shard. Every token is checked to be in [0, vocab_size) in one
/// pass at open (a vectorisable scan for .bin; 1M-token hyperslab blocks for HDF5), so
/// later reads need no checks; vocab_size = 0 skips the check.
/// Throws InputError naming the file for: a missing or unreadable file; a .bin with the
/// wrong magic, an unknown version or a size that disagrees with its header (truncated);
/// an HDF5 file without the dataset, or one that is not 1-D or not integer-typed; and a
/// token id >= vocab_size (the message gives the token and its position).
std::unique_ptr<TokenShard> open_token_shard(const std::string& spec, int64_t vocab_size);

/// Writes `tokens` as a `.bin` shard recording `tokenizer`: version 1 (uint16) when the
/// vocabulary fits 65536 ids, else version 2 (uint32). The file appears atomically: it is
/// written to a temporary and renamed. Throws IoError naming the path on failure.
void write_bin_shard(const std::string& path, const std::vector<uint32_t>& tokens, const ShardTokenizer& tokenizer);
/// A version-1 shard that records no tokenizer (tests, other tools' shards).
void write_bin_shard(const std::string& path, const std::vector<uint16_t>& tokens);

/// Writes `tokens` as a 1-D chunked dataset `dataset` of a new HDF5 file (atomic like
/// write_bin_shard): uint16, or uint32 above 65536 ids, with attributes "num_tokens" and,
/// when known, "vocab_size" and "tokenizer_fingerprint" (16 hex digits). Throws IoError.
void write_h5_shard(const std::string& path, const std::vector<uint32_t>& tokens, const ShardTokenizer& tokenizer,
                    const std::string& dataset = kDefaultTokenDataset);
void write_h5_shard(const std::string& path, const std::vector<uint16_t>& tokens,
                    const std::string& dataset = kDefaultTokenDataset);

}  // namespace hnas::data
