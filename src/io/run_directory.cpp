// SPDX-License-Identifier: Apache-2.0
#include "hnas/io/run_directory.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <sstream>

#include "h5_open_impl.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/log.hpp"
#include "posix_impl.hpp"

namespace hnas::io {
namespace {

constexpr const char* kLockFile = ".hnas.lock";
constexpr const char* kMoveAway = "; move it away or use a new --run-dir";

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

// " (host node12, pid 4711, since 2026-12-01T21:00:00Z)", or "" while the holder has not
// yet written its line (it writes right after taking the lock).
std::string describe_holder(int fd) {
  char text[512] = "";
  const ssize_t size = ::pread(fd, text, sizeof text - 1, 0);
  if (size <= 0) return "";
  std::istringstream line(std::string(text, static_cast<size_t>(size)));
  std::string host, pid, since;
  if (!(line >> host >> pid >> since)) return "";
  return " (host " + host + ", pid " + pid + ", since " + since + ")";
}

// One line "host pid start-time", fsync'ed so that a job on another node of a shared file
// system can read it while this process still holds the file open.
void write_holder(int fd, const std::string& path) {
  const std::string line = detail::host_name() + " " + std::to_string(::getpid()) + " " + utc_now() + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, line.data(), line.size(), 0) != static_cast<ssize_t>(line.size()) ||
      ::fsync(fd) != 0) {
    throw IoError("cannot write the holder line to " + path + ": " + std::strerror(errno));
  }
}

// Where the object at `name` (an absolute path) in `file` stands.
enum class Member { Missing, Group, NotGroup, Unreadable };

Member find_member(hid_t file, const std::string& name) {
  // H5Lexists fails, rather than saying no, when an intermediate group is missing.
  for (size_t pos = name.find('/', 1);; pos = name.find('/', pos + 1)) {
    const std::string prefix = name.substr(0, pos);
    if (!prefix.empty() && prefix != "/") {
      const htri_t exists = H5Lexists(file, prefix.c_str(), H5P_DEFAULT);
      if (exists < 0) {
        H5Eclear2(H5E_DEFAULT);
        return Member::Unreadable;
      }
      if (exists == 0) return Member::Missing;
    }
    if (pos == std::string::npos) break;
  }
  const H5Handle<H5Oclose> object(H5Oopen(file, name.c_str(), H5P_DEFAULT));
  if (!object) {
    H5Eclear2(H5E_DEFAULT);
    return Member::Unreadable;
  }
  return H5Iget_type(object.get()) == H5I_GROUP ? Member::Group : Member::NotGroup;
}

}  // namespace

void ensure_writable_directory(const std::string& dir, const std::string& what, const std::string& remedy) {
  const std::string name = what + " " + dir;
  struct stat info {};
  if (::stat(dir.c_str(), &info) != 0) {
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    if (error) throw ConfigError("cannot create " + name + " (" + error.message() + "); " + remedy);
  } else if (!S_ISDIR(info.st_mode)) {
    throw ConfigError(name + " is not a directory; " + remedy);
  }
  const auto not_writable = [&](int error) {
    return ConfigError(name + " is not writable (" + std::strerror(error) + "); " + remedy);
  };
  if (::access(dir.c_str(), W_OK | X_OK) != 0) throw not_writable(errno);
  // access(2) passes for root on a directory without write bits, and cannot see NFS root
  // squashing or a read-only mount everywhere: creating a file is the real test.
  const std::string probe = dir + "/.hnas-probe." + detail::host_name() + "." + std::to_string(::getpid());
  detail::FileDescriptor fd(::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) throw not_writable(errno);
  fd.close();
  ::unlink(probe.c_str());
}

RunDirectoryLock::RunDirectoryLock(const std::string& run_dir) : run_dir_(run_dir) {
  ensure_writable_directory(run_dir, "run directory", "choose another --run-dir");
  const std::string path = run_dir + "/" + kLockFile;
  // No O_TRUNC: the current holder's line must survive until we hold the lock ourselves.
  detail::FileDescriptor fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) {
    throw ConfigError("cannot open " + path + " (" + std::strerror(errno) + "); choose another --run-dir");
  }
  int result = 0;
  do {
    result = ::flock(fd.get(), LOCK_EX | LOCK_NB);
  } while (result != 0 && errno == EINTR);
  if (result != 0) {
    const int error = errno;
    if (error == EWOULDBLOCK) {
      throw ConfigError("run directory " + run_dir + " is in use by another hnas job" + describe_holder(fd.get()) +
                        "; wait for it to end or use another --run-dir");
    }
    if (error != ENOLCK && error != ENOSYS && error != EOPNOTSUPP) {
      throw IoError("cannot lock " + path + ": " + std::strerror(error));
    }
    log::warn("run directory " + run_dir + " cannot be locked (" + std::strerror(error) +
              "); make sure no other hnas job uses it");
    return;
  }
  write_holder(fd.get(), path);
  fd_ = fd.release();
  locked_ = true;
}

RunDirectoryLock::~RunDirectoryLock() { release(); }

RunDirectoryLock::RunDirectoryLock(RunDirectoryLock&& other) noexcept
    : run_dir_(std::move(other.run_dir_)),
      fd_(std::exchange(other.fd_, -1)),
      locked_(std::exchange(other.locked_, false)) {}

RunDirectoryLock& RunDirectoryLock::operator=(RunDirectoryLock&& other) noexcept {
  if (this != &other) {
    release();
    run_dir_ = std::move(other.run_dir_);
    fd_ = std::exchange(other.fd_, -1);
    locked_ = std::exchange(other.locked_, false);
  }
  return *this;
}

// Closing the only descriptor of the open file description drops the flock; the file stays.
void RunDirectoryLock::release() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  locked_ = false;
}

H5File open_results_file(const std::string& path, const std::vector<std::string>& required_groups) {
  using detail::OpenProblem;
  const std::string damaged = path + " is damaged (truncated or not an HDF5 file)" + kMoveAway;
  detail::OpenAttempt attempt = detail::try_open_read_only(path);
  switch (attempt.problem) {
    case OpenProblem::None:
      break;
    case OpenProblem::Missing:
      throw InputError("cannot open " + path + " (" + attempt.detail + ")");
    case OpenProblem::Directory:
      throw InputError(path + " is a directory, not a results file" + kMoveAway);
    case OpenProblem::NotRegular:
      throw InputError(path + " is not a regular file, not a results file" + kMoveAway);
    case OpenProblem::Unreadable:
      throw InputError("cannot read " + path + " (" + attempt.detail + "); fix its permissions or use a new --run-dir");
    case OpenProblem::NotHdf5:
    case OpenProblem::Damaged:
      throw InputError(damaged);
    case OpenProblem::Locked:
      throw InputError("cannot open " + path + ": another process holds its HDF5 file lock\n  " + detail::kLockHint);
  }
  for (const std::string& group : required_groups) {
    switch (find_member(attempt.file.get(), group)) {
      case Member::Group:
        break;
      case Member::Missing:
        throw InputError(path + " is an HDF5 file but not an hnas results file (no " + group + " group)" + kMoveAway);
      case Member::NotGroup:
        throw InputError(path + " is an HDF5 file but not an hnas results file (" + group + " is not a group)" +
                         kMoveAway);
      case Member::Unreadable:
        throw InputError(damaged);
    }
  }
  return std::move(attempt.file);
}

void check_results_file(const std::string& path, const std::vector<std::string>& required_groups) {
  open_results_file(path, required_groups);
}

}  // namespace hnas::io
