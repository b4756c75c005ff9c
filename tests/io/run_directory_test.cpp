// SPDX-License-Identifier: Apache-2.0
// Run-directory start-up checks: one job per directory (and a killed job frees it), the
// directory must be writable, and a damaged results file is refused in one clear line.
#include "hnas/io/run_directory.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "child_process.hpp"
#include "hnas/core/error.hpp"
#include "hnas/io/h5.hpp"
#include "hnas/io/results_table.hpp"
#include "support/test_support.hpp"

namespace {

using hnas::testing::message_of;
using hnas::testing::run_in_child;
using hnas::testing::TempDir;

namespace io = hnas::io;

bool contains(const std::string& text, const std::string& fragment) { return text.find(fragment) != std::string::npos; }

std::string this_host() {
  char name[256] = "";
  ::gethostname(name, sizeof name - 1);
  return name;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// ---- RunDirectoryLock ----------------------------------------------------------------

TEST(RunDirectoryLock, creates_the_directory_and_records_the_holder) {
  TempDir dir;
  const std::string run_dir = dir.file("runs/a/b");
  io::RunDirectoryLock lock(run_dir);
  EXPECT_TRUE(lock.locked());
  EXPECT_EQ(lock.run_dir(), run_dir);
  EXPECT_TRUE(std::filesystem::is_directory(run_dir));
  const std::string holder = read_text(run_dir + "/.hnas.lock");
  EXPECT_EQ(holder.rfind(this_host() + " " + std::to_string(::getpid()) + " 20", 0), 0u) << holder;
  EXPECT_EQ(holder.back(), '\n');
  // The writability probe leaves nothing behind.
  for (const auto& entry : std::filesystem::directory_iterator(run_dir)) {
    EXPECT_EQ(entry.path().filename(), ".hnas.lock");
  }
}

TEST(RunDirectoryLock, a_second_lock_is_refused_naming_the_holder) {
  TempDir dir;
  const std::string run_dir = dir.file("run");
  io::RunDirectoryLock first(run_dir);
  // flock locks belong to the open file description: a second open conflicts even here.
  try {
    io::RunDirectoryLock second(run_dir);
    FAIL() << "a second lock on " << run_dir << " succeeded";
  } catch (const hnas::ConfigError& e) {
    const std::string message = e.what();
    EXPECT_EQ(e.exit_code(), hnas::kExitConfig);
    EXPECT_EQ(message.rfind("run directory " + run_dir + " is in use by another hnas job (host " + this_host() +
                                ", pid " + std::to_string(::getpid()) + ", since 20",
                            0),
              0u)
        << message;
    EXPECT_TRUE(contains(message, "Z); wait for it to end or use another --run-dir")) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
  // The refused attempt left the holder line alone.
  EXPECT_TRUE(contains(read_text(run_dir + "/.hnas.lock"), std::to_string(::getpid()))) << "holder line lost";
}

TEST(RunDirectoryLock, is_released_on_destruction_and_follows_moves) {
  TempDir dir;
  const std::string a = dir.file("a");
  const std::string b = dir.file("b");
  { io::RunDirectoryLock lock(a); }
  EXPECT_TRUE(std::filesystem::exists(a + "/.hnas.lock"));  // never deleted: deleting races the next locker

  io::RunDirectoryLock first(a);
  io::RunDirectoryLock moved(std::move(first));
  EXPECT_FALSE(first.locked());
  EXPECT_TRUE(moved.locked());
  EXPECT_THROW(io::RunDirectoryLock again(a), hnas::ConfigError);

  moved = io::RunDirectoryLock(b);  // releases a
  EXPECT_EQ(moved.run_dir(), b);
  EXPECT_NO_THROW(io::RunDirectoryLock again(a));
  EXPECT_THROW(io::RunDirectoryLock again(b), hnas::ConfigError);
}

TEST(RunDirectoryLock, a_killed_holder_leaves_the_directory_lockable) {
  TempDir dir;
  const std::string run_dir = dir.file("run");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    try {
      io::RunDirectoryLock lock(run_dir);
      (void)!::write(ready[1], "L", 1);
      for (;;) ::pause();  // holds the lock until SIGKILL
    } catch (...) {
      (void)!::write(ready[1], "F", 1);
    }
    ::_exit(1);
  }
  ::close(ready[1]);
  char state = 0;
  ASSERT_EQ(::read(ready[0], &state, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(state, 'L') << "the child could not take the lock";

  const std::string message = message_of<hnas::ConfigError>([&] { io::RunDirectoryLock lock(run_dir); });
  EXPECT_TRUE(contains(message, "pid " + std::to_string(child) + ",")) << message;

  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  io::RunDirectoryLock lock(run_dir);  // no stale lock: the kernel dropped it with the process
  EXPECT_TRUE(lock.locked());
  EXPECT_TRUE(contains(read_text(run_dir + "/.hnas.lock"), " " + std::to_string(::getpid()) + " "));
}

// ---- ensure_writable_directory -------------------------------------------------------

TEST(RunDirectoryLock, refuses_a_path_that_is_a_regular_file) {
  TempDir dir;
  const std::string file = dir.file("results.h5");
  std::ofstream(file) << "x";
  try {
    io::RunDirectoryLock lock(file);
    FAIL() << "locked a regular file";
  } catch (const hnas::ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "run directory " + file + " is not a directory; choose another --run-dir");
    EXPECT_EQ(e.exit_code(), hnas::kExitConfig);
  }
}

TEST(EnsureWritableDirectory, says_when_the_directory_cannot_be_created) {
  TempDir dir;
  const std::string file = dir.file("file");
  std::ofstream(file) << "x";
  const std::string below = file + "/run";
  const std::string message =
      message_of<hnas::ConfigError>([&] { io::ensure_writable_directory(below, "run directory", "choose another"); });
  EXPECT_EQ(message, "cannot create run directory " + below + " (Not a directory); choose another");
}

TEST(EnsureWritableDirectory, refuses_a_directory_without_write_permission) {
  TempDir dir;
  const std::string run_dir = dir.file("run");
  std::filesystem::create_directories(run_dir + "/sub");
  // Others may enter but not write; root ignores the mode bits, so the check runs as nobody.
  ::chmod(dir.path().c_str(), 0755);
  ::chmod(run_dir.c_str(), 0555);
  ::chmod((run_dir + "/sub").c_str(), 0555);
  const std::string result = run_in_child([&]() -> std::string {
    if (std::string skip = hnas::testing::drop_root_in_child(); !skip.empty()) return skip;
    std::string report;
    report += message_of<hnas::ConfigError>([&] { io::RunDirectoryLock lock(run_dir); }) + "\n";
    report += message_of<hnas::ConfigError>([&] { io::RunDirectoryLock lock(run_dir + "/sub/new"); });
    return report;
  });
  ::chmod(run_dir.c_str(), 0755);
  ::chmod((run_dir + "/sub").c_str(), 0755);
  if (result.rfind("SKIP:", 0) == 0) GTEST_SKIP() << result;
  EXPECT_EQ(result, "run directory " + run_dir + " is not writable (Permission denied); choose another --run-dir\n" +
                        "cannot create run directory " + run_dir +
                        "/sub/new (Permission denied); choose another --run-dir");
}

TEST(EnsureWritableDirectory, refuses_a_read_only_file_system_even_as_root) {
  TempDir dir;
  const std::string mount_point = dir.file("ro");
  std::filesystem::create_directories(mount_point);
  const std::string result = run_in_child([&]() -> std::string {
    if (std::string skip = hnas::testing::mount_private_tmpfs(mount_point, MS_RDONLY, "size=64k"); !skip.empty()) {
      return skip;
    }
    std::string report;
    report += message_of<hnas::ConfigError>([&] { io::RunDirectoryLock lock(mount_point); }) + "\n";
    report += message_of<hnas::ConfigError>([&] { io::RunDirectoryLock lock(mount_point + "/new"); });
    return report;
  });
  if (result.rfind("SKIP:", 0) == 0) GTEST_SKIP() << result;
  EXPECT_EQ(result, "run directory " + mount_point +
                        " is not writable (Read-only file system); choose another --run-dir\n" +
                        "cannot create run directory " + mount_point +
                        "/new (Read-only file system); choose another --run-dir");
}

// ---- open_results_file ---------------------------------------------------------------

const std::vector<std::string> kGroups = {"/search", "/provenance"};
const std::string kMoveAway = "; move it away or use a new --run-dir";

// A small results file as the io layer writes it, with enough data that half of it is a
// real truncation (mid-dataset, not just a missing tail of metadata).
void write_results(const std::string& path) {
  io::write_file_atomically(path, [](hid_t file) {
    io::write_dataset_1d(file, "/search/losses", std::vector<double>(20000, 1.5));
    io::write_string_dataset(file, "/provenance/config", "[search]\nstrategy = random\n", "test text");
  });
}

std::string input_error(const std::string& path) {
  return message_of<hnas::InputError>([&] { io::check_results_file(path, kGroups); });
}

TEST(OpenResultsFile, opens_a_results_file) {
  TempDir dir;
  const std::string path = dir.file("results.h5");
  write_results(path);
  const io::H5File file = io::open_results_file(path, kGroups);
  EXPECT_TRUE(file.valid());
  EXPECT_NO_THROW(io::check_results_file(path, {"/search", "/provenance"}));
}

TEST(OpenResultsFile, refuses_a_directory) {
  TempDir dir;
  const std::string path = dir.file("results.h5");
  std::filesystem::create_directories(path);
  EXPECT_EQ(input_error(path), path + " is a directory, not a results file" + kMoveAway);
}

TEST(OpenResultsFile, refuses_a_truncated_file_without_hdf5_details) {
  TempDir dir;
  const std::string path = dir.file("results.h5");
  write_results(path);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  try {
    io::check_results_file(path, kGroups);
    FAIL() << "a truncated file passed";
  } catch (const hnas::InputError& e) {
    // One line: no HDF5 call site, no stack, no file-locking hint ("superblock" is no lock).
    EXPECT_EQ(std::string(e.what()), path + " is damaged (truncated or not an HDF5 file)" + kMoveAway);
    EXPECT_EQ(e.exit_code(), hnas::kExitConfig);
  }
}

TEST(OpenResultsFile, refuses_empty_and_non_hdf5_files) {
  TempDir dir;
  const std::string empty = dir.file("empty.h5");
  std::ofstream(empty).close();
  EXPECT_EQ(input_error(empty), empty + " is damaged (truncated or not an HDF5 file)" + kMoveAway);
  const std::string text = dir.file("text.h5");
  std::ofstream(text) << "candidate_id,loss\n1,0.5\n";
  EXPECT_EQ(input_error(text), text + " is damaged (truncated or not an HDF5 file)" + kMoveAway);
}

TEST(OpenResultsFile, refuses_an_hdf5_file_without_the_results_groups) {
  TempDir dir;
  const std::string path = dir.file("other.h5");
  {
    io::H5File file = io::create_file(path);
    io::write_dataset_1d(file.get(), "/foo/x", std::vector<int32_t>{1});
  }
  EXPECT_EQ(input_error(path), path + " is an HDF5 file but not an hnas results file (no /search group)" + kMoveAway);

  const std::string dataset = dir.file("dataset.h5");
  {
    io::H5File file = io::create_file(dataset);
    io::write_dataset_1d(file.get(), "/search", std::vector<int32_t>{1});
  }
  EXPECT_EQ(input_error(dataset),
            dataset + " is an HDF5 file but not an hnas results file (/search is not a group)" + kMoveAway);

  const std::string results = dir.file("results.h5");
  write_results(results);
  const std::string message = message_of<hnas::InputError>([&] {
    io::check_results_file(results, {"/search", "/extra/deep"});
  });
  EXPECT_EQ(message, results + " is an HDF5 file but not an hnas results file (no /extra/deep group)" + kMoveAway);
}

TEST(OpenResultsFile, names_a_missing_file) {
  TempDir dir;
  const std::string path = dir.file("results.h5");
  EXPECT_EQ(input_error(path), "cannot open " + path + " (No such file or directory)");
}

TEST(OpenResultsFile, says_when_the_file_is_not_readable) {
  TempDir dir;
  const std::string path = dir.file("results.h5");
  write_results(path);
  ::chmod(dir.path().c_str(), 0755);
  ::chmod(path.c_str(), 0200);
  const std::string result = run_in_child([&]() -> std::string {
    if (std::string skip = hnas::testing::drop_root_in_child(); !skip.empty()) return skip;
    return input_error(path);
  });
  if (result.rfind("SKIP:", 0) == 0) GTEST_SKIP() << result;
  EXPECT_EQ(result, "cannot read " + path + " (Permission denied); fix its permissions or use a new --run-dir");
}

}  // namespace
