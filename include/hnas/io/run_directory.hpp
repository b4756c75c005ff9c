// SPDX-License-Identifier: Apache-2.0
// The start-up checks on a run directory: that this job may write there, that no other
// hnas job is using it (an flock on DIR/.hnas.lock held for the whole job), and that the
// results file it would resume from is one. Each failure is one line naming the culprit.
// Rank 0 only: the other ranks never touch the run directory.
#pragma once

#include <string>
#include <vector>

#include "hnas/io/h5.hpp"

namespace hnas::io {

/// Creates `dir` (and missing parents) if it does not exist and checks that this process
/// can create files in it: access(W_OK) and an actual probe file, because root passes the
/// mode-bit check on a read-only or root-squashed file system. Rank-local.
/// Throws ConfigError (exit code 2), e.g. with what = "run directory" and
/// remedy = "choose another --run-dir":
///   "run directory runs/x is not a directory; choose another --run-dir"
///   "cannot create run directory runs/x (Permission denied); choose another --run-dir"
///   "run directory runs/x is not writable (Read-only file system); choose another --run-dir"
void ensure_writable_directory(const std::string& dir, const std::string& what, const std::string& remedy);

/// Exclusive ownership of a run directory for as long as the object lives, so that two
/// jobs started on the same --run-dir cannot overwrite each other's results. Construct it
/// on rank 0 before results.h5 is read and keep it until the job ends:
///   io::RunDirectoryLock lock(options.run_dir);   // rank 0, first thing in start-up
/// The lock is flock(2) on DIR/.hnas.lock, which the kernel drops when the process ends in
/// any way (kill -9, a node reboot), so a lock is never stale and the file is never deleted
/// (deleting it would race with the next job taking the lock). While locked, the file holds
/// one line "host pid start-time" so that a refused job can name the holder; after the job
/// it still holds that line, which then means nothing.
/// flock works across nodes on NFS (emulated with fcntl locks) and on Lustre mounted with
/// -o flock; where the file system has no locks at all (ENOLCK, ENOSYS, EOPNOTSUPP) the
/// directory is used unlocked with a warning, since refusing would make hnas unusable there.
/// Movable, not copyable; flock locks belong to the open file description, so a second
/// RunDirectoryLock on the same directory fails even within one process.
class RunDirectoryLock {
 public:
  /// Makes the directory (ensure_writable_directory), then takes the lock without waiting.
  /// Throws ConfigError (exit code 2) when the directory cannot be used, or when another
  /// job holds it:
  ///   "run directory runs/x is in use by another hnas job (host node12, pid 4711, since
  ///    2026-12-01T21:00:00Z); wait for it to end or use another --run-dir"
  /// Throws IoError when the holder line cannot be written.
  explicit RunDirectoryLock(const std::string& run_dir);
  ~RunDirectoryLock();

  RunDirectoryLock(const RunDirectoryLock&) = delete;
  RunDirectoryLock& operator=(const RunDirectoryLock&) = delete;
  RunDirectoryLock(RunDirectoryLock&& other) noexcept;
  RunDirectoryLock& operator=(RunDirectoryLock&& other) noexcept;

  const std::string& run_dir() const noexcept { return run_dir_; }
  /// False when the file system has no locks and the directory is used unlocked (or after a move).
  bool locked() const noexcept { return locked_; }

 private:
  void release() noexcept;

  std::string run_dir_;
  int fd_ = -1;
  bool locked_ = false;
};

/// Opens the results file `path` read-only to resume from it, after checking that it is
/// one: an HDF5 file that HDF5 can open and that has every group in `required_groups`
/// (absolute paths such as "/search"). Rank-local (rank 0 reads results.h5).
/// Throws InputError (exit code 2) whose first line says what is wrong and what to do,
/// never an HDF5 call site:
///   "runs/x/results.h5 is a directory, not a results file; move it away or use a new --run-dir"
///   "runs/x/results.h5 is damaged (truncated or not an HDF5 file); move it away or use a new --run-dir"
///   "runs/x/results.h5 is an HDF5 file but not an hnas results file (no /search group); move it
///    away or use a new --run-dir"
///   "cannot read runs/x/results.h5 (Permission denied); fix its permissions or use a new --run-dir"
///   "cannot open runs/x/results.h5 (No such file or directory)"
/// A file locked by another process (HDF5's own lock) names HDF5_USE_FILE_LOCKING instead.
///   const io::H5File file = io::open_results_file(run_dir + "/results.h5", {"/search", "/provenance"});
H5File open_results_file(const std::string& path, const std::vector<std::string>& required_groups);

/// open_results_file without keeping the file open: call it before a loader that opens the
/// file itself, so damage is reported in these words rather than the loader's. Rank-local.
void check_results_file(const std::string& path, const std::vector<std::string>& required_groups);

}  // namespace hnas::io
