// SPDX-License-Identifier: Apache-2.0
#include "hnas/data/token_shard.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "hnas/core/check.hpp"
#include "hnas/core/files.hpp"
#include "hnas/io/h5.hpp"
#include "hnas/io/results_table.hpp"

// Shard headers and tokens are little-endian and are read with plain loads.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "token shards are little-endian: add byte swapping for this host");

namespace hnas::data {
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

template <typename T>
T load(const unsigned char* bytes) {
  T value;
  std::memcpy(&value, bytes, sizeof value);
  return value;
}

[[noreturn]] void throw_token_out_of_range(const std::string& name, int64_t token, int64_t position,
                                           int64_t vocab_size) {
  throw InputError(name + ": token " + std::to_string(token) + " at position " + std::to_string(position) +
                   " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
}

// A read-only private mapping of a whole file; unmapped on destruction.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) throw InputError("token shard " + path + " does not exist");
      throw InputError("cannot open token shard " + path + ": " + std::strerror(errno));
    }
    struct stat info {};
    const bool stat_ok = ::fstat(fd, &info) == 0;
    const int stat_errno = errno;
    if (!stat_ok || !S_ISREG(info.st_mode)) {
      ::close(fd);
      throw InputError("cannot read token shard " + path + ": " +
                       (stat_ok ? std::string("not a regular file") : std::strerror(stat_errno)));
    }
    size_ = static_cast<size_t>(info.st_size);
    if (size_ > 0) {
      void* data = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      const int map_errno = errno;
      ::close(fd);  // the mapping keeps the file alive
      if (data == MAP_FAILED) {
        throw InputError("cannot memory-map token shard " + path + ": " + std::strerror(map_errno));
      }
      data_ = static_cast<const unsigned char*>(data);
    } else {
      ::close(fd);
    }
  }
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<unsigned char*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

// A shard made by a tokenizer of another vocabulary than the model's is refused before its
// ids are scanned: the message then names the cause, not the first out-of-range id.
void check_recorded_vocabulary(const std::string& name, const ShardTokenizer& tokenizer, int64_t vocab_size) {
  if (!tokenizer.known() || vocab_size <= 0 || tokenizer.vocab_size == vocab_size) return;
  throw ConfigError(name + ": made by a tokenizer of " + std::to_string(tokenizer.vocab_size) +
                    " ids (see the shards' _tokenizer.txt), but the model's vocabulary is " +
                    std::to_string(vocab_size) +
                    "; set tokens.vocab_size (hnas evaluate, search) or extrapolate.vocab_size (pretrain) to " +
                    std::to_string(tokenizer.vocab_size) + ", or tokenize again");
}

class BinShard final : public TokenShard {
 public:
  BinShard(const std::string& path, int64_t vocab_size) : name_(path), file_(path) {
    const auto size = static_cast<int64_t>(file_.size());
    HNAS_CHECK(size >= 4, InputError,
               path << ": not a token shard (the file has " << size << " bytes; a shard starts with a "
                    << kShardHeaderBytes << "-byte header)");
    const int32_t magic = load<int32_t>(file_.data());
    HNAS_CHECK(magic == kShardMagic, InputError,
               path << ": not a token shard (magic " << magic << ", expected " << kShardMagic << ")");
    HNAS_CHECK(size >= kShardHeaderBytes, InputError,
               path << ": truncated token shard: expected at least the " << kShardHeaderBytes
                    << "-byte header, the file has " << size << " bytes");
    const int32_t version = load<int32_t>(file_.data() + 4);
    HNAS_CHECK(version == kShardVersionU16 || version == kShardVersionU32, InputError,
               path << ": unsupported token shard version " << version << " (supported: " << kShardVersionU16
                    << " = uint16 tokens, " << kShardVersionU32 << " = uint32 tokens)");
    token_bytes_ = version == kShardVersionU16 ? 2 : 4;
    num_tokens_ = load<int32_t>(file_.data() + 8);
    HNAS_CHECK(num_tokens_ >= 0, InputError,
               path << ": corrupt token shard header (token count " << num_tokens_ << ")");
    const int64_t expected = kShardHeaderBytes + num_tokens_ * token_bytes_;
    HNAS_CHECK(size >= expected, InputError,
               path << ": truncated token shard: the header announces " << num_tokens_
                    << " tokens, so the file should have " << expected << " bytes, but it has " << size << " bytes");
    HNAS_CHECK(size == expected, InputError,
               path << ": corrupt token shard: the header announces " << num_tokens_ << " tokens (" << expected
                    << " bytes), but the file has " << size << " bytes");
    tokens_ = file_.data() + kShardHeaderBytes;
    if (load<int32_t>(file_.data() + 12) == kShardTokenizerTag) {
      tokenizer_.vocab_size = load<int32_t>(file_.data() + 16);
      tokenizer_.fingerprint = static_cast<uint64_t>(load<uint32_t>(file_.data() + 20)) |
                               static_cast<uint64_t>(load<uint32_t>(file_.data() + 24)) << 32;
    }
    check_recorded_vocabulary(name_, tokenizer_, vocab_size);
    if (vocab_size > 0) {
      if (token_bytes_ == 2) {
        check_vocab<uint16_t>(vocab_size);
      } else {
        check_vocab<uint32_t>(vocab_size);
      }
    }
  }

  const std::string& name() const override { return name_; }
  int64_t size() const override { return num_tokens_; }
  ShardTokenizer tokenizer() const override { return tokenizer_; }

  void read(int64_t offset, int64_t count, int64_t* out) const override {
    HNAS_ASSERT(offset >= 0 && count >= 0 && offset + count <= num_tokens_,
                name_ << ": read [" << offset << ", " << offset + count << ") of " << num_tokens_);
    const unsigned char* p = tokens_ + offset * token_bytes_;
    if (token_bytes_ == 2) {
      for (int64_t i = 0; i < count; ++i) out[i] = load<uint16_t>(p + 2 * i);
    } else {
      for (int64_t i = 0; i < count; ++i) out[i] = load<uint32_t>(p + 4 * i);
    }
  }

 private:
  // Block maxima vectorise; the exact position is searched only in a failing block.
  template <typename T>
  void check_vocab(int64_t vocab_size) const {
    constexpr int64_t kBlock = 1 << 16;
    for (int64_t begin = 0; begin < num_tokens_; begin += kBlock) {
      const int64_t end = std::min(num_tokens_, begin + kBlock);
      T largest = 0;
      for (int64_t i = begin; i < end; ++i) {
        largest = std::max(largest, load<T>(tokens_ + i * sizeof(T)));
      }
      if (static_cast<int64_t>(largest) < vocab_size) continue;
      for (int64_t i = begin; i < end; ++i) {
        const auto token = static_cast<int64_t>(load<T>(tokens_ + i * sizeof(T)));
        if (token >= vocab_size) throw_token_out_of_range(name_, token, i, vocab_size);
      }
    }
  }

  std::string name_;
  MappedFile file_;
  const unsigned char* tokens_ = nullptr;
  int64_t token_bytes_ = 2;
  int64_t num_tokens_ = 0;
  ShardTokenizer tokenizer_;
};

// Reads windows on demand through hyperslabs: HDF5 token files can exceed memory, and a
// window is a few KiB. The file stays open for the shard's lifetime.
class H5Shard final : public TokenShard {
 public:
  H5Shard(const ShardSpec& spec, int64_t vocab_size)
      : name_(spec.path + ":" + spec.dataset),
        file_(io::open_file_read_only(spec.path)),
        dataset_(io::open_dataset(file_.get(), spec.dataset)) {
    // A zero-length read still validates the rank and the element type (float rejected).
    io::read_int32_slice(dataset_.get(), 0, 0);
    num_tokens_ = static_cast<int64_t>(io::dataset_shape(dataset_.get())[0]);
    if (io::has_attribute(dataset_.get(), "vocab_size") && io::has_attribute(dataset_.get(), "tokenizer_fingerprint")) {
      tokenizer_.vocab_size = io::read_int_attribute(dataset_.get(), "vocab_size");
      tokenizer_.fingerprint =
          std::strtoull(io::read_string_attribute(dataset_.get(), "tokenizer_fingerprint").c_str(), nullptr, 16);
    }
    check_recorded_vocabulary(name_, tokenizer_, vocab_size);
    constexpr int64_t kBlock = 1 << 20;
    for (int64_t begin = 0; vocab_size > 0 && begin < num_tokens_; begin += kBlock) {
      const int64_t count = std::min(kBlock, num_tokens_ - begin);
      const std::vector<int32_t> block =
          io::read_int32_slice(dataset_.get(), static_cast<hsize_t>(begin), static_cast<hsize_t>(count));
      for (int64_t i = 0; i < count; ++i) {
        if (block[i] < 0 || block[i] >= vocab_size) {
          throw_token_out_of_range(name_, block[i], begin + i, vocab_size);
        }
      }
    }
  }

  const std::string& name() const override { return name_; }
  int64_t size() const override { return num_tokens_; }
  ShardTokenizer tokenizer() const override { return tokenizer_; }

  void read(int64_t offset, int64_t count, int64_t* out) const override {
    HNAS_ASSERT(offset >= 0 && count >= 0 && offset + count <= num_tokens_,
                name_ << ": read [" << offset << ", " << offset + count << ") of " << num_tokens_);
    const std::vector<int32_t> values =
        io::read_int32_slice(dataset_.get(), static_cast<hsize_t>(offset), static_cast<hsize_t>(count));
    std::copy(values.begin(), values.end(), out);
  }

 private:
  std::string name_;
  io::H5File file_;
  io::H5Dataset dataset_;
  int64_t num_tokens_ = 0;
  ShardTokenizer tokenizer_;
};

[[noreturn]] void throw_write_error(const std::string& path, const std::string& what) {
  throw IoError("cannot write token shard " + path + ": " + what);
}

void rename_into_place(const std::string& tmp, const std::string& path) {
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int saved = errno;
    std::remove(tmp.c_str());
    throw_write_error(path, std::string("rename failed: ") + std::strerror(saved));
  }
}

}  // namespace

ShardSpec parse_shard_spec(const std::string& spec) {
  HNAS_CHECK(!spec.empty(), InputError, "empty token shard name");
  ShardSpec parsed;
  const auto checked = [](ShardSpec p) {  // never open a FIFO or a directory: it would block or mislead
    require_readable_file(p.path, "token shard");
    return p;
  };
  for (const char* extension : {".h5:", ".hdf5:"}) {
    const size_t at = spec.find(extension);
    if (at == std::string::npos) continue;
    const size_t colon = at + std::strlen(extension) - 1;
    parsed.format = ShardFormat::H5;
    parsed.path = spec.substr(0, colon);
    parsed.dataset = spec.substr(colon + 1);
    HNAS_CHECK(!parsed.dataset.empty(), InputError, "token shard \"" << spec << "\": no dataset name after ':'");
    if (parsed.dataset.front() != '/') parsed.dataset.insert(0, "/");
    return checked(parsed);
  }
  parsed.path = spec;
  require_readable_file(spec, "token shard");
  if (ends_with(spec, ".h5") || ends_with(spec, ".hdf5")) {
    parsed.format = ShardFormat::H5;
  } else if (!ends_with(spec, ".bin")) {
    // Unknown extension: look for the HDF5 signature; anything else is validated as .bin.
    static const unsigned char kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char head[8] = {};
    std::FILE* file = std::fopen(spec.c_str(), "rb");
    HNAS_CHECK(file != nullptr, InputError, "token shard " << spec << " cannot be opened: " << std::strerror(errno));
    const size_t got = std::fread(head, 1, sizeof head, file);
    std::fclose(file);
    if (got == sizeof head && std::memcmp(head, kSignature, sizeof head) == 0) {
      parsed.format = ShardFormat::H5;
    }
  }
  if (parsed.format == ShardFormat::H5) parsed.dataset = kDefaultTokenDataset;
  return parsed;
}

std::unique_ptr<TokenShard> open_token_shard(const std::string& spec, int64_t vocab_size) {
  const ShardSpec parsed = parse_shard_spec(spec);
  if (parsed.format == ShardFormat::Bin) return std::make_unique<BinShard>(parsed.path, vocab_size);
  return std::make_unique<H5Shard>(parsed, vocab_size);
}

namespace {

template <typename T>
void write_bin(const std::string& path, const std::vector<T>& tokens, const ShardTokenizer& tokenizer) {
  if (tokens.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    throw_write_error(path, std::to_string(tokens.size()) + " tokens exceed the int32 count of the shard header");
  }
  int32_t header[kShardHeaderInts] = {};
  header[0] = kShardMagic;
  header[1] = sizeof(T) == 2 ? kShardVersionU16 : kShardVersionU32;
  header[2] = static_cast<int32_t>(tokens.size());
  if (tokenizer.known()) {
    header[3] = kShardTokenizerTag;
    header[4] = static_cast<int32_t>(tokenizer.vocab_size);
    header[5] = static_cast<int32_t>(static_cast<uint32_t>(tokenizer.fingerprint));
    header[6] = static_cast<int32_t>(static_cast<uint32_t>(tokenizer.fingerprint >> 32));
  }
  const std::string tmp = io::temporary_name(path);
  std::FILE* file = std::fopen(tmp.c_str(), "wb");
  if (file == nullptr) throw_write_error(path, std::strerror(errno));
  errno = 0;
  bool ok = std::fwrite(header, sizeof header, 1, file) == 1;
  ok = ok && (tokens.empty() || std::fwrite(tokens.data(), sizeof(T), tokens.size(), file) == tokens.size());
  ok = (std::fclose(file) == 0) && ok;  // fclose flushes: a full disk can show up only here
  if (!ok) {
    const int saved = errno;
    std::remove(tmp.c_str());
    throw_write_error(path, saved != 0 ? std::strerror(saved) : "write failed");
  }
  rename_into_place(tmp, path);
}

template <typename T>
void write_h5(const std::string& path, const std::vector<T>& tokens, const ShardTokenizer& tokenizer,
              const std::string& dataset) {
  const std::string tmp = io::temporary_name(path);
  try {
    io::H5File file = io::create_file(tmp);
    // 64 Ki-token chunks (128 KiB) fit HDF5's default 1 MiB chunk cache, and a random
    // window touches at most two of them. No compression: windows are read at random.
    io::H5Dataset data = io::write_dataset_1d(file.get(), dataset, tokens, io::DatasetOptions{/*chunk=*/1 << 16, 0});
    io::write_int_attribute(data.get(), "num_tokens", static_cast<int64_t>(tokens.size()));
    if (tokenizer.known()) {
      char hex[17];
      std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(tokenizer.fingerprint));
      io::write_int_attribute(data.get(), "vocab_size", tokenizer.vocab_size);
      io::write_string_attribute(data.get(), "tokenizer_fingerprint", hex);
    }
    data.close();
    file.close();
  } catch (const Error&) {
    std::remove(tmp.c_str());
    throw;
  }
  rename_into_place(tmp, path);
}

bool fits_uint16(const ShardTokenizer& tokenizer) { return tokenizer.vocab_size <= 65536; }

std::vector<uint16_t> narrowed(const std::vector<uint32_t>& tokens) {
  return std::vector<uint16_t>(tokens.begin(), tokens.end());
}

}  // namespace

void write_bin_shard(const std::string& path, const std::vector<uint32_t>& tokens, const ShardTokenizer& tokenizer) {
  if (fits_uint16(tokenizer))
    write_bin(path, narrowed(tokens), tokenizer);
  else
    write_bin(path, tokens, tokenizer);
}

void write_bin_shard(const std::string& path, const std::vector<uint16_t>& tokens) { write_bin(path, tokens, {}); }

void write_h5_shard(const std::string& path, const std::vector<uint32_t>& tokens, const ShardTokenizer& tokenizer,
                    const std::string& dataset) {
  if (fits_uint16(tokenizer))
    write_h5(path, narrowed(tokens), tokenizer, dataset);
  else
    write_h5(path, tokens, tokenizer, dataset);
}

void write_h5_shard(const std::string& path, const std::vector<uint16_t>& tokens, const std::string& dataset) {
  write_h5(path, tokens, {}, dataset);
}

}  // namespace hnas::data
