// SPDX-License-Identifier: Apache-2.0
// Where a run's results came from: the effective configuration text, the versions of hnas
// and its libraries, the machine and job shape, and a fingerprint of the input data.
// Stored as /provenance in results.h5 (the configuration as the string dataset
// /provenance/config, the rest as attributes of the group).
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>

namespace hnas::io {

struct Provenance {
  std::string config;  ///< effective INI: every key with its value, re-loadable
  std::string hnas_version, git_revision, torch_version, mpi_version, hdf5_version, hostname, started_utc;
  int64_t world_size = 1;
  int64_t ranks_per_candidate = 1;
  int64_t teams = 1;
  int64_t seed = 0;
  std::string strategy;
  /// Size and sampled hash of every input shard ("" when the objective generates its data).
  std::string data_fingerprint;
};

/// Writes `p` into the open file (creates /provenance). Rank 0, inside a file write.
void write_provenance(hid_t file, const Provenance& p);

/// Reads /provenance from an open file written by write_provenance. Attributes that older
/// files lack read as empty. Throws InputError naming the file when /provenance is missing.
Provenance read_provenance(hid_t file);

}  // namespace hnas::io
