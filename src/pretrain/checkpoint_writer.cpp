// SPDX-License-Identifier: Apache-2.0
#include "checkpoint_writer.hpp"

#include <hdf5.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "hnas/core/log.hpp"

namespace hnas::pretrain {

namespace {
bool hdf5_thread_safe() {
  hbool_t safe = 0;
  return H5is_library_threadsafe(&safe) >= 0 && safe;
}
}  // namespace

CheckpointWriter::CheckpointWriter(std::string dir, int64_t keep, std::string label)
    : dir_(std::move(dir)), keep_(keep), label_(std::move(label)), background_(hdf5_thread_safe()) {}

CheckpointWriter::~CheckpointWriter() {
  try {
    wait();
  } catch (const std::exception& e) {
    log::warn(label_ + ": a checkpoint write failed while the job was ending: " + e.what());
  }
}

void CheckpointWriter::write(const Checkpoint& c) {
  const auto start = std::chrono::steady_clock::now();
  write_checkpoint(dir_, c, keep_);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  last_write_seconds_ = seconds;
  int64_t bytes = 0;
  for (const auto* list : {&c.weights, &c.exp_avg, &c.exp_avg_sq})
    for (const auto& t : *list) bytes += t.tensor.numel() * static_cast<int64_t>(t.tensor.element_size());
  log::info(log::format("%s: checkpoint of step %ld written: %.1f MB in %.3f s (%.0f MB/s)", label_.c_str(),
                        static_cast<long>(c.step), bytes / 1e6, seconds, bytes / 1e6 / std::max(seconds, 1e-9)));
}

void CheckpointWriter::start(Checkpoint checkpoint) {
  wait();
  if (!background_) {
    write(checkpoint);
    return;
  }
  worker_ = std::thread([this, c = std::move(checkpoint)] {
    try {
      write(c);
    } catch (...) {
      error_ = std::current_exception();
    }
  });
}

void CheckpointWriter::wait() {
  if (worker_.joinable()) worker_.join();
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

}  // namespace hnas::pretrain
