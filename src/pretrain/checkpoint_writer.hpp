// SPDX-License-Identifier: Apache-2.0
// Checkpoints written on a background thread (internal to pretrain/), one at a time: the
// training loop hands over a snapshot (CPU copies of the weights and moments) and goes on
// while the file is written, fsync'ed and renamed. The next checkpoint, a stop and the
// end wait for the one in flight first, so at most one snapshot is held. The other
// thread meanwhile writes results.h5, which needs an HDF5 built thread-safe (Debian's
// and Ubuntu's are); with another HDF5 every write is synchronous.
//
// Rank-local: the rank that checkpoints (a team's rank 0).
#pragma once

#include <atomic>
#include <exception>
#include <string>
#include <thread>

#include "hnas/pretrain/checkpoint.hpp"

namespace hnas::pretrain {

class CheckpointWriter {
 public:
  /// Checkpoints of DIR keep the newest `keep`; `label` prefixes the log line of each write.
  CheckpointWriter(std::string dir, int64_t keep, std::string label);
  /// Waits for the write in flight; its error, if any, is logged (an error is already on
  /// its way when the writer is destroyed unwaited).
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  /// Waits for the previous write (rethrowing its IoError), then starts writing
  /// `checkpoint`; with a thread-unsafe HDF5, writes it before returning.
  void start(Checkpoint checkpoint);
  /// Until no write is in flight; rethrows the IoError of a failed one (the checkpoints
  /// before it are intact).
  void wait();
  /// Whether writes go on in the background (HDF5 is thread-safe).
  bool background() const { return background_; }
  /// Seconds the last finished write took (0 before the first). Thread-safe.
  double last_write_seconds() const { return last_write_seconds_; }

 private:
  void write(const Checkpoint& checkpoint);

  std::string dir_;
  int64_t keep_;
  std::string label_;
  bool background_;
  std::thread worker_;
  std::exception_ptr error_;
  std::atomic<double> last_write_seconds_{0};
};

}  // namespace hnas::pretrain
