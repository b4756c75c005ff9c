// SPDX-License-Identifier: Apache-2.0
// Runs a test step in a forked child, for what a test process must not do to itself: lower
// a resource limit, drop root, enter a private mount namespace.
#pragma once

#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <exception>
#include <functional>
#include <string>

namespace hnas::testing {

/// How the child ends once `body` has returned.
enum class ChildEnd {
  Immediately,      ///< _exit: no atexit handlers, no static destructors
  RunExitHandlers,  ///< exit: libraries shut down as at the end of hnas (HDF5 closes what is left)
};

/// Runs `body` in a forked child and returns the text it returned. GoogleTest assertions in
/// the child are not seen by the parent, so `body` reports through its result ("OK", or
/// what went wrong; "SKIP: why" by convention). An exception, a non-zero exit or a signal
/// that ends the child is reported in the text.
inline std::string run_in_child(const std::function<std::string()>& body, ChildEnd end = ChildEnd::Immediately) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    ::close(fds[0]);
    std::string text;
    try {
      text = body();
    } catch (const std::exception& e) {
      text = std::string("uncaught exception: ") + e.what();
    } catch (...) {
      text = "uncaught non-standard exception";
    }
    for (size_t done = 0; done < text.size();) {
      const ssize_t n = ::write(fds[1], text.data() + done, text.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::close(fds[1]);
    if (end == ChildEnd::RunExitHandlers) std::exit(0);
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) != 0;) {
    if (n < 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) text += "\n[child killed by signal " + std::to_string(WTERMSIG(status)) + "]";
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
    text += "\n[child exit code " + std::to_string(WEXITSTATUS(status)) + "]";
  return text;
}

/// The id of a process that has ended (and been reaped): a pid nothing runs under, until
/// the kernel hands it out again.
inline pid_t ended_process_id() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

/// In a child only: gives up root for user and group "nobody" (65534), so that mode bits
/// apply. "" on success (or when not root to begin with), else "SKIP: why".
inline std::string drop_root_in_child() {
  if (::geteuid() != 0) return "";
  if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) {
    return std::string("SKIP: cannot drop root (") + std::strerror(errno) + ")";
  }
  return "";
}

/// In a child only: mounts a tmpfs on `dir` in a private mount namespace, which ends with
/// the child, so nothing is left mounted whatever happens. `flags` e.g. MS_RDONLY,
/// `options` e.g. "size=256k". "" on success, else "SKIP: why" (needs CAP_SYS_ADMIN).
inline std::string mount_private_tmpfs(const std::string& dir, unsigned long flags, const std::string& options) {
  if (::unshare(CLONE_NEWNS) != 0)
    return std::string("SKIP: no private mount namespace (") + std::strerror(errno) + ")";
  // Private first: a mount under a shared "/" would propagate to the test's namespace.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      ::mount("tmpfs", dir.c_str(), "tmpfs", flags, options.c_str()) != 0) {
    return std::string("SKIP: cannot mount a tmpfs (") + std::strerror(errno) + ")";
  }
  return "";
}

}  // namespace hnas::testing
