// SPDX-License-Identifier: Apache-2.0
// Module-private: one read-only open that says why it failed, shared by open_file_read_only
// and open_results_file so both name the same defects with the same words.
#pragma once

#include <string>

#include "hnas/io/h5.hpp"

namespace hnas::io::detail {

/// What kept a file from being opened read-only.
enum class OpenProblem {
  None,        ///< opened
  Missing,     ///< stat(2) failed; `detail` is strerror (usually "No such file or directory")
  Directory,   ///< the path is a directory
  NotRegular,  ///< a device, socket or FIFO
  Unreadable,  ///< open(2) for reading failed; `detail` is strerror ("Permission denied")
  NotHdf5,     ///< no HDF5 signature (an empty file, a text file, a .bin shard)
  Damaged,     ///< the signature is there but HDF5 cannot open it (truncated); `detail` is the stack
  Locked,      ///< HDF5's file lock failed; `detail` is the stack
};

struct OpenAttempt {
  H5File file;  ///< valid only when problem == None
  OpenProblem problem = OpenProblem::None;
  std::string detail;
};

/// Opens `path` read-only, or says why not; never throws for the defects above. Rank-local.
OpenAttempt try_open_read_only(const std::string& path);

/// The lines appended to a lock failure: what to try, naming HDF5_USE_FILE_LOCKING.
extern const char* const kLockHint;

}  // namespace hnas::io::detail
