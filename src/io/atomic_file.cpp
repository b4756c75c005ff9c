// SPDX-License-Identifier: Apache-2.0
// write_file_atomically (declared in results_table.hpp): the file is built in memory, written
// to a temporary that belongs to this process and call, and renamed over the target.
#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "hnas/core/error.hpp"
#include "hnas/io/h5.hpp"
#include "hnas/io/results_table.hpp"
#include "posix_impl.hpp"

namespace hnas::io {
namespace {

// The core driver grows its buffer by this much at a time.
constexpr size_t kImageIncrement = size_t{4} << 20;

std::atomic<unsigned long> g_temporaries{0};

std::string directory_of(const std::string& path) {
  const std::string directory = std::filesystem::path(path).parent_path().string();
  return directory.empty() ? "." : directory;
}

// Removes temporaries of `path` left by killed writers on this host. Those of live
// processes, and all from other hosts (whose processes cannot be asked), stay.
void remove_stale_temporaries(const std::string& path) noexcept {
  namespace fs = std::filesystem;
  const std::string prefix = fs::path(path).filename().string() + ".tmp." + detail::host_name() + ".";
  std::error_code error;
  for (fs::directory_iterator it(directory_of(path), error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const char* pid_text = name.c_str() + prefix.size();
    char* rest = nullptr;
    const long pid = std::strtol(pid_text, &rest, 10);
    if (rest == pid_text || *rest != '.' || pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      std::error_code ignored;
      fs::remove(it->path(), ignored);
    }
  }
}

// Whether every link of the absolute `path` exists (H5Lexists fails on a missing parent).
bool link_exists(hid_t file, const std::string& path) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    const std::string prefix = path.substr(0, slash);
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) return true;
  }
}

bool is_out_of_space(int error) { return error == ENOSPC || error == EDQUOT || error == EFBIG; }

// One line for the user; a full disk or quota gets its own wording because it is the one
// failure the user can fix without a bug report.
[[noreturn]] void throw_file_error(const std::string& step, const std::string& tmp, const std::string& path,
                                   int error) {
  if (is_out_of_space(error)) {
    const bool previous = ::access(path.c_str(), F_OK) == 0;
    throw IoError("no space left on device (or quota exceeded) writing " + tmp + "; " +
                  (previous ? "the previous " + path + " is intact" : path + " was not created") +
                  "; free space or move the run directory\n  " + step + " failed: " + std::strerror(error));
  }
  throw IoError("cannot " + step + " " + tmp + ": " + std::strerror(error));
}

// Builds the HDF5 file in memory (core driver, no backing store) and returns its bytes.
// HDF5 then never writes to the disk itself, so a full disk fails our own write(2) with a
// precise errno; and HDF5 1.10 is spared a failed H5Fclose, which leaves a dangling file id
// that crashes the process at exit.
std::vector<char> build_image(const std::string& name, const std::function<void(hid_t file)>& fill) {
  H5Plist access(HNAS_CHECK_H5(H5Pcreate(H5P_FILE_ACCESS)));
  HNAS_CHECK_H5(H5Pset_fapl_core(access.get(), kImageIncrement, /*backing_store=*/false));
  // STRONG: objects `fill` left open are closed with the file.
  HNAS_CHECK_H5(H5Pset_fclose_degree(access.get(), H5F_CLOSE_STRONG));
  H5File file = create_file(name, access.get());
  fill(file.get());
  // A global flush also writes the chunk caches of datasets `fill` left open.
  HNAS_CHECK_H5(H5Fflush(file.get(), H5F_SCOPE_GLOBAL));
  const ssize_t size = HNAS_CHECK_H5(H5Fget_file_image(file.get(), nullptr, 0));
  std::vector<char> image(static_cast<size_t>(size));
  HNAS_CHECK_H5(H5Fget_file_image(file.get(), image.data(), image.size()));
  file.close();
  return image;
}

// write(2) until done; 0 or the errno of the failing call.
int write_all(int fd, const std::vector<char>& bytes) {
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t written = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) return errno;
    done += static_cast<size_t>(written);
  }
  return 0;
}

// Without this the rename may be lost on power failure even though the data is durable.
void fsync_directory(const std::string& path) {
  const std::string directory = directory_of(path);
  detail::FileDescriptor fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) throw IoError("cannot open " + directory + " to fsync it: " + std::strerror(errno));
  // Some file systems cannot sync directories and say EINVAL; there is nothing to retry.
  if (::fsync(fd.get()) != 0 && errno != EINVAL) {
    throw IoError("cannot fsync " + directory + ": " + std::strerror(errno));
  }
}

}  // namespace

std::string temporary_name(const std::string& path) {
  return path + ".tmp." + detail::host_name() + "." + std::to_string(::getpid()) + "." +
         std::to_string(++g_temporaries);
}

void write_file_atomically(const std::string& path, const std::function<void(hid_t file)>& fill) {
  disable_hdf5_error_printing();
  remove_stale_temporaries(path);
  const std::string tmp = temporary_name(path);
  // Created before `fill` runs: a missing or read-only directory fails before any work.
  detail::FileDescriptor fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  if (!fd.valid()) throw_file_error("create", tmp, path, errno);
  try {
    const std::vector<char> image = build_image(tmp, fill);
    if (const int error = write_all(fd.get(), image)) throw_file_error("write", tmp, path, error);
    if (::fsync(fd.get()) != 0) throw_file_error("fsync", tmp, path, errno);
    // NFS reports a quota overrun as late as close(2).
    if (const int error = fd.close()) throw_file_error("close", tmp, path, error);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      throw IoError("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
    }
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  fsync_directory(path);
}

void write_large_file_atomically(const std::string& path, const std::function<void(hid_t file)>& fill) {
  disable_hdf5_error_printing();
  remove_stale_temporaries(path);
  const std::string tmp = temporary_name(path);
  try {
    {
      H5File file = create_file(tmp);
      fill(file.get());
      HNAS_CHECK_H5(H5Fflush(file.get(), H5F_SCOPE_GLOBAL));
      file.close();
    }
    detail::FileDescriptor fd(::open(tmp.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) throw_file_error("reopen", tmp, path, errno);
    if (::fsync(fd.get()) != 0) throw_file_error("fsync", tmp, path, errno);
    if (const int error = fd.close()) throw_file_error("close", tmp, path, error);
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      throw IoError("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  fsync_directory(path);
}

void update_file_atomically(const std::string& path, const std::vector<std::string>& replaced,
                            const std::function<void(hid_t file)>& fill) {
  std::error_code missing;
  if (!std::filesystem::exists(path, missing)) {
    write_file_atomically(path, fill);
    return;
  }
  const H5File previous = open_file_read_only(path);
  write_file_atomically(path, [&](hid_t file) {
    for (const auto& name : link_names(previous.get())) {
      if (std::find(replaced.begin(), replaced.end(), "/" + name) != replaced.end()) continue;
      HNAS_CHECK_H5(H5Ocopy(previous.get(), name.c_str(), file, name.c_str(), H5P_DEFAULT, H5P_DEFAULT));
    }
    // A nested object was copied with its parent: unlink it from the new file.
    for (const auto& path : replaced)
      if (path.find('/', 1) != std::string::npos && link_exists(file, path))
        HNAS_CHECK_H5(H5Ldelete(file, path.c_str(), H5P_DEFAULT));
    fill(file);
  });
}

}  // namespace hnas::io
