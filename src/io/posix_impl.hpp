// SPDX-License-Identifier: Apache-2.0
// Module-private: an owned file descriptor and the host name, for the run-directory lock and
// the temporaries of write_file_atomically.
#pragma once

#include <unistd.h>

#include <string>
#include <utility>

namespace hnas::io::detail {

/// Owns one file descriptor. Non-copyable, movable; the destructor closes it silently, so
/// call close() where a failed close means lost data (NFS reports quota errors there).
class FileDescriptor {
 public:
  FileDescriptor() noexcept = default;
  explicit FileDescriptor(int fd) noexcept : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  /// Closes now; returns 0 or the errno of a failed close(2) (the descriptor is gone either way).
  int close() noexcept {
    const int fd = std::exchange(fd_, -1);
    return fd >= 0 && ::close(fd) != 0 ? errno : 0;
  }

 private:
  int fd_ = -1;
};

/// gethostname(2), or "unknown-host" when it fails.
inline std::string host_name() {
  char name[256] = "";
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "unknown-host";
  return name;
}

}  // namespace hnas::io::detail
