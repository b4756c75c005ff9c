// SPDX-License-Identifier: Apache-2.0
// The token shards a job is given, as a set: checks that no shard is named twice (or is
// both a training and a validation shard), and a fingerprint that tells a resumed job
// whether its inputs changed since the run started. Rank-local.
#pragma once

#include <string>
#include <vector>

namespace hnas::data {

/// Training shards then validation shards, in order.
std::vector<std::string> all_shard_specs(const std::vector<std::string>& train, const std::vector<std::string>& valid);

/// Throws ConfigError naming the shard when the same file (and dataset, for HDF5) appears
/// twice among `train`, twice among `valid`, or in both: a validation shard that is also
/// trained on measures memorisation, not generalisation. Paths are compared after
/// resolving symbolic links and "..".
void check_distinct_shards(const std::vector<std::string>& train, const std::vector<std::string>& valid);

/// "name:size:hash;..." over every shard: the byte size and a 64-bit hash of the first
/// and last 64 KiB and of 16 evenly spaced 4 KiB blocks (fast on multi-GB shards; a change
/// anywhere is caught when it alters the size, the header, or a sampled block). Names are
/// the file names without directories, so a run directory copied with its data elsewhere
/// still matches.
std::string fingerprint_shards(const std::vector<std::string>& specs);

/// One line saying which shard differs between two fingerprints (for the resume refusal).
std::string describe_fingerprint_change(const std::string& recorded, const std::string& current);

}  // namespace hnas::data
