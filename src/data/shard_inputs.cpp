// SPDX-License-Identifier: Apache-2.0
#include "hnas/data/shard_inputs.hpp"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/files.hpp"
#include "hnas/core/hash.hpp"
#include "hnas/data/token_shard.hpp"

namespace hnas::data {
namespace {

// The file and dataset a spec names, with the path resolved, for comparisons (the file
// need not exist yet: opening it is the dataset's job).
std::string identity(const std::string& spec) {
  std::string path = spec, dataset;
  for (const char* extension : {".h5:", ".hdf5:"}) {
    const size_t at = spec.find(extension);
    if (at == std::string::npos) continue;
    path = spec.substr(0, at + std::strlen(extension) - 1);
    dataset = spec.substr(path.size() + 1);
    if (!dataset.empty() && dataset.front() != '/') dataset.insert(0, "/");
    break;
  }
  std::error_code error;
  const auto absolute = std::filesystem::absolute(path, error).lexically_normal();
  const auto resolved = std::filesystem::weakly_canonical(absolute, error);
  return (error ? absolute.string() : resolved.string()) + (dataset.empty() ? "" : ":" + dataset);
}

uint64_t sampled_hash(const std::string& path, uint64_t size) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  HNAS_CHECK(file != nullptr, InputError, "token shard " << printable(path) << " cannot be opened");
  std::vector<unsigned char> buffer(64 * 1024);
  uint64_t hash = kFnvOffsetBasis;
  const auto take = [&](uint64_t offset, uint64_t count) {
    count = std::min<uint64_t>(count, size - std::min(size, offset));
    if (count == 0) return;
    std::fseek(file, static_cast<long>(offset), SEEK_SET);
    const size_t got = std::fread(buffer.data(), 1, static_cast<size_t>(count), file);
    hash = fnv1a(hash, buffer.data(), got);
  };
  take(0, buffer.size());
  for (uint64_t block = 1; block <= 16; ++block) take(size / 17 * block, 4096);
  if (size > buffer.size()) take(size - buffer.size(), buffer.size());
  std::fclose(file);
  return hash;
}

// (name, "size:hash") per shard, in the order the shards were given.
std::vector<std::pair<std::string, std::string>> parse_fingerprint(const std::string& fingerprint) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(fingerprint);
  for (std::string entry; std::getline(in, entry, ';');) {
    const auto colon = entry.find(':');
    if (colon != std::string::npos) out.emplace_back(entry.substr(0, colon), entry.substr(colon + 1));
  }
  return out;
}

}  // namespace

std::vector<std::string> all_shard_specs(const std::vector<std::string>& train, const std::vector<std::string>& valid) {
  std::vector<std::string> specs = train;
  specs.insert(specs.end(), valid.begin(), valid.end());
  return specs;
}

void check_distinct_shards(const std::vector<std::string>& train, const std::vector<std::string>& valid) {
  std::map<std::string, std::pair<std::string, bool>> seen;  // identity -> (spec, is validation)
  for (size_t i = 0; i < train.size() + valid.size(); ++i) {
    const bool validation = i >= train.size();
    const std::string& spec = validation ? valid[i - train.size()] : train[i];
    const auto [it, added] = seen.emplace(identity(spec), std::make_pair(spec, validation));
    if (added) continue;
    const auto& [first_spec, first_validation] = it->second;
    if (first_validation != validation)
      throw ConfigError("token shard " + printable(spec) +
                        " is both a training shard (data) and a validation shard (tokens.valid); a model "
                        "validated on its training data measures memorisation");
    throw ConfigError("token shard " + printable(spec) + " is listed twice in " +
                      (validation ? "tokens.valid" : "data") +
                      (first_spec == spec ? "" : " (as " + printable(first_spec) + ")") + "; list each shard once");
  }
}

std::string fingerprint_shards(const std::vector<std::string>& specs) {
  std::string out;
  for (const auto& spec : specs) {
    const ShardSpec parsed = parse_shard_spec(spec);
    std::error_code error;
    const uint64_t size = std::filesystem::file_size(parsed.path, error);
    HNAS_CHECK(!error, InputError, "token shard " << printable(spec) << " cannot be read: " << error.message());
    char hash[32];
    std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(sampled_hash(parsed.path, size)));
    const std::string name =
        std::filesystem::path(parsed.path).filename().string() + (parsed.dataset.empty() ? "" : parsed.dataset);
    out += (out.empty() ? "" : ";") + name + ":" + std::to_string(size) + ":" + hash;
  }
  return out;
}

std::string describe_fingerprint_change(const std::string& recorded, const std::string& current) {
  const auto before = parse_fingerprint(recorded), now = parse_fingerprint(current);
  const auto size_of = [](const std::string& v) { return v.substr(0, v.find(':')); };
  for (size_t i = 0; i < now.size() && i < before.size(); ++i) {
    const auto& [name, value] = now[i];
    const std::string which = "shard " + std::to_string(i + 1) + " (" + name + ")";
    if (before[i].first != name) return which + " was " + before[i].first;
    if (before[i].second != value)
      return size_of(before[i].second) == size_of(value)
                 ? which + " has other contents"
                 : which + " was " + size_of(before[i].second) + " bytes, is " + size_of(value);
  }
  if (now.size() != before.size())
    return std::to_string(before.size()) + " shards were given, now " + std::to_string(now.size());
  return "the fingerprints differ";
}

}  // namespace hnas::data
