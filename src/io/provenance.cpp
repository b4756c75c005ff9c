// SPDX-License-Identifier: Apache-2.0
#include "hnas/io/provenance.hpp"

#include <utility>
#include <vector>

#include "hnas/core/check.hpp"
#include "hnas/io/h5.hpp"
#include "hnas/io/results_table.hpp"

namespace hnas::io {

void write_provenance(hid_t file, const Provenance& p) {
  write_string_dataset(file, "/provenance/config", p.config,
                       "the search's effective configuration (INI text; hnas search --config reloads it)");
  H5Group group(HNAS_CHECK_H5(H5Gopen2(file, "/provenance", H5P_DEFAULT)));
  write_string_attribute(group.get(), "doc",
                         "where and how the search ran: versions, host, start time (UTC), ranks, teams, seed, "
                         "strategy and the fingerprint of its input data");
  for (const auto& [name, value] :
       std::vector<std::pair<std::string, std::string>>{{"hnas_version", p.hnas_version},
                                                        {"git_revision", p.git_revision},
                                                        {"libtorch_version", p.torch_version},
                                                        {"mpi_version", p.mpi_version},
                                                        {"hdf5_version", p.hdf5_version},
                                                        {"hostname", p.hostname},
                                                        {"started_utc", p.started_utc},
                                                        {"strategy", p.strategy},
                                                        {"data_fingerprint", p.data_fingerprint}})
    write_string_attribute(group.get(), name, value);
  write_int_attribute(group.get(), "world_size", p.world_size);
  write_int_attribute(group.get(), "ranks_per_candidate", p.ranks_per_candidate);
  write_int_attribute(group.get(), "teams", p.teams);
  write_int_attribute(group.get(), "seed", p.seed);
}

Provenance read_provenance(hid_t file) {
  HNAS_CHECK(H5Lexists(file, "/provenance", H5P_DEFAULT) > 0, InputError,
             describe(file) << " has no /provenance group: not a results file written by hnas");
  Provenance p;
  p.config = read_string_dataset(file, "/provenance/config");
  const H5Group group(HNAS_CHECK_H5(H5Gopen2(file, "/provenance", H5P_DEFAULT)));
  const auto text = [&](const char* name) {
    return has_attribute(group.get(), name) ? read_string_attribute(group.get(), name) : std::string();
  };
  const auto integer = [&](const char* name) {
    return has_attribute(group.get(), name) ? read_int_attribute(group.get(), name) : int64_t{0};
  };
  p.hnas_version = text("hnas_version");
  p.git_revision = text("git_revision");
  p.torch_version = text("libtorch_version");
  p.mpi_version = text("mpi_version");
  p.hdf5_version = text("hdf5_version");
  p.hostname = text("hostname");
  p.started_utc = text("started_utc");
  p.strategy = text("strategy");
  p.data_fingerprint = text("data_fingerprint");
  p.world_size = integer("world_size");
  p.ranks_per_candidate = integer("ranks_per_candidate");
  p.teams = integer("teams");
  p.seed = integer("seed");
  return p;
}

}  // namespace hnas::io
