// SPDX-License-Identifier: Apache-2.0
// write_file_atomically under pressure: temporaries no other writer can take, stale ones of
// killed writers cleaned up, and a full disk or file size limit reported as such with the
// previous file intact.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
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

std::string this_host() {
  char name[256] = "";
  ::gethostname(name, sizeof name - 1);
  return name;
}

// File names in `dir` that start with "<name>.tmp".
std::vector<std::string> temporaries(const std::string& dir, const std::string& name) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string file = entry.path().filename().string();
    if (file.rfind(name + ".tmp", 0) == 0) found.push_back(file);
  }
  return found;
}

void write_ints(const std::string& path, const std::vector<int32_t>& values) {
  io::write_file_atomically(path, [&](hid_t file) { io::write_dataset_1d(file, "v", values); });
}

std::vector<int32_t> read_ints(const std::string& path) {
  const io::H5File file = io::open_file_read_only(path);
  const io::H5Dataset d = io::open_dataset(file.get(), "v");
  return io::read_int32_slice(d.get(), 0, io::dataset_shape(d.get())[0]);
}

TEST(WriteFileAtomically, temporary_names_hold_host_and_pid_and_differ_per_call) {
  TempDir dir;
  const std::string path = dir.file("results.h5");
  std::vector<std::string> seen;
  for (int i = 0; i < 2; ++i) {
    io::write_file_atomically(path, [&](hid_t file) {
      const auto now = temporaries(dir.path(), "results.h5");
      ASSERT_EQ(now.size(), 1u);
      seen.push_back(now[0]);
      io::write_dataset_1d(file, "v", std::vector<int32_t>{i});
    });
  }
  ASSERT_EQ(seen.size(), 2u);
  const std::string prefix = "results.h5.tmp." + this_host() + "." + std::to_string(::getpid()) + ".";
  EXPECT_EQ(seen[0].rfind(prefix, 0), 0u) << seen[0];
  EXPECT_EQ(seen[1].rfind(prefix, 0), 0u) << seen[1];
  EXPECT_NE(seen[0], seen[1]);
  EXPECT_TRUE(temporaries(dir.path(), "results.h5").empty());
}

// What two jobs on one target did before: the second removed (or renamed away) the first's
// fixed-name temporary, and the first then failed. Here B runs entirely inside A's fill.
TEST(WriteFileAtomically, interleaved_writers_to_one_target_do_not_clobber_each_other) {
  TempDir dir;
  const std::string path = dir.file("results.h5");
  write_ints(path, {0});
  io::write_file_atomically(path, [&](hid_t file) {
    io::write_dataset_1d(file, "v", std::vector<int32_t>{1, 1});
    write_ints(path, {2, 2, 2});  // writer B starts and finishes while A is half done
    EXPECT_EQ(read_ints(path), (std::vector<int32_t>{2, 2, 2}));
    EXPECT_EQ(temporaries(dir.path(), "results.h5").size(), 1u);  // A's is still there
  });
  EXPECT_EQ(read_ints(path), (std::vector<int32_t>{1, 1}));  // the last rename wins, whole
  EXPECT_TRUE(temporaries(dir.path(), "results.h5").empty());
}

TEST(WriteFileAtomically, removes_only_temporaries_of_ended_writers_on_this_host) {
  TempDir dir;
  const std::string path = dir.file("results.h5");
  const std::string base = "results.h5.tmp." + this_host() + ".";
  const std::string ended = base + std::to_string(hnas::testing::ended_process_id()) + ".1";
  const std::string running = base + std::to_string(::getppid()) + ".1";  // the shell or ctest: alive
  const std::string other_host = "results.h5.tmp.some-other-node.1.1";
  const std::string legacy = "results.h5.tmp";
  for (const std::string& name : {ended, running, other_host, legacy}) std::ofstream(dir.file(name)) << "partial";
  write_ints(path, {5});
  EXPECT_FALSE(std::filesystem::exists(dir.file(ended)));
  EXPECT_TRUE(std::filesystem::exists(dir.file(running)));
  EXPECT_TRUE(std::filesystem::exists(dir.file(other_host)));
  EXPECT_TRUE(std::filesystem::exists(dir.file(legacy)));
  EXPECT_EQ(read_ints(path), std::vector<int32_t>{5});
}

// The out-of-space message, then: no temporary left, the previous file whole. Run in a child
// that has set a limit (or mounted a small file system) first.
std::string check_out_of_space(const std::string& dir, const std::string& path) {
  std::string message;
  try {
    write_ints(path, std::vector<int32_t>(1 << 20, 9));  // 4 MiB
    return "a 4 MiB write succeeded";
  } catch (const hnas::IoError& e) {
    message = e.what();
  }
  const std::string expected = "no space left on device (or quota exceeded) writing " + path + ".tmp." + this_host() +
                               "." + std::to_string(::getpid()) + ".";
  const std::string first_line = message.substr(0, message.find('\n'));
  if (first_line.rfind(expected, 0) != 0 ||
      first_line.find("; the previous " + path + " is intact; free space or move the run directory") ==
          std::string::npos) {
    return "unexpected message: " + message;
  }
  if (!temporaries(dir, "results.h5").empty()) return "a temporary was left: " + temporaries(dir, "results.h5")[0];
  if (read_ints(path) != std::vector<int32_t>{1, 2, 3}) return "the previous file changed";
  return "OK " + message.substr(message.find('\n') + 1);
}

TEST(WriteFileAtomically, a_file_size_limit_is_reported_as_out_of_space_and_the_old_file_stays) {
  TempDir dir;
  const std::string path = dir.file("results.h5");
  write_ints(path, {1, 2, 3});
  // RLIMIT_FSIZE makes writes past the limit fail with EFBIG (SIGXFSZ ignored): a full
  // disk that needs no privileges. The child then exits as hnas does, through HDF5's atexit
  // shutdown, which crashes (SIGSEGV) when a failed H5Fclose has left a file id behind.
  const std::string result = run_in_child(
      [&] {
        ::signal(SIGXFSZ, SIG_IGN);
        const rlimit limit{64 << 10, 64 << 10};
        if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return std::string("setrlimit failed");
        return check_out_of_space(dir.path(), path);
      },
      hnas::testing::ChildEnd::RunExitHandlers);
  EXPECT_EQ(result, "OK   write failed: File too large");
}

TEST(WriteFileAtomically, a_full_file_system_is_reported_and_the_old_file_stays) {
  TempDir dir;
  const std::string mount_point = dir.file("small");
  std::filesystem::create_directories(mount_point);
  const std::string result = run_in_child([&] {
    if (std::string skip = hnas::testing::mount_private_tmpfs(mount_point, 0, "size=256k"); !skip.empty()) {
      return skip;
    }
    const std::string path = mount_point + "/results.h5";
    write_ints(path, {1, 2, 3});
    return check_out_of_space(mount_point, path);
  });
  if (result.rfind("SKIP:", 0) == 0) GTEST_SKIP() << result;
  EXPECT_EQ(result, "OK   write failed: No space left on device");
}

TEST(WriteFileAtomically, a_missing_directory_fails_before_fill_runs) {
  TempDir dir;
  const std::string path = dir.file("no/such/dir/results.h5");
  bool filled = false;
  const std::string message =
      message_of<hnas::IoError>([&] { io::write_file_atomically(path, [&](hid_t) { filled = true; }); });
  EXPECT_EQ(message.rfind("cannot create " + path + ".tmp.", 0), 0u) << message;
  EXPECT_NE(message.find(": No such file or directory"), std::string::npos) << message;
  EXPECT_FALSE(filled);
}

}  // namespace

namespace {

// The shared results file: a stage replaces its own groups, top-level or nested, and every
// other object stays with its attributes; the large-file variant writes the same bytes.
TEST(UpdateFileAtomically, replaces_only_the_named_groups_top_level_or_nested) {
  TempDir dir;
  const std::string path = dir.file("results.h5");
  io::write_file_atomically(path, [](hid_t file) {
    io::write_string_dataset(file, "/search/config", "search", "test text");
    io::write_string_dataset(file, "/pretrain/winner/train", "old winner", "test text");
    io::write_string_dataset(file, "/pretrain/baseline/train", "baseline", "test text");
    io::H5Group group(HNAS_CHECK_H5(H5Gopen2(file, "/pretrain", H5P_DEFAULT)));
    io::write_string_attribute(group.get(), "doc", "kept");
  });
  io::update_file_atomically(path, {"/pretrain/winner", "/aggregate"}, [](hid_t file) {
    io::write_string_dataset(file, "/pretrain/winner/train", "new winner", "test text");
    io::write_string_dataset(file, "/aggregate/config", "aggregate", "test text");
  });
  const auto file = io::open_file_read_only(path);
  EXPECT_EQ(io::read_string_dataset(file.get(), "/search/config"), "search");
  EXPECT_EQ(io::read_string_dataset(file.get(), "/pretrain/winner/train"), "new winner");
  EXPECT_EQ(io::read_string_dataset(file.get(), "/pretrain/baseline/train"), "baseline");
  EXPECT_EQ(io::read_string_dataset(file.get(), "/aggregate/config"), "aggregate");
  io::H5Group group(HNAS_CHECK_H5(H5Gopen2(file.get(), "/pretrain", H5P_DEFAULT)));
  EXPECT_EQ(io::read_string_attribute(group.get(), "doc"), "kept");
  EXPECT_EQ(io::link_names(file.get()), (std::vector<std::string>{"aggregate", "pretrain", "search"}));
}

TEST(UpdateFileAtomically, a_missing_file_starts_empty_and_a_large_file_is_written_in_place) {
  TempDir dir;
  io::update_file_atomically(dir.file("new.h5"), {"/x"},
                             [](hid_t file) { io::write_string_dataset(file, "/x/y", "first", "test text"); });
  EXPECT_EQ(io::read_string_dataset(io::open_file_read_only(dir.file("new.h5")).get(), "/x/y"), "first");
  io::write_large_file_atomically(
      dir.file("big.h5"), [](hid_t file) { io::write_dataset_1d(file, "/values", std::vector<float>(1 << 20, 1.5f)); });
  EXPECT_TRUE(temporaries(dir.path(), "big.h5").empty());
  const auto file = io::open_file_read_only(dir.file("big.h5"));
  EXPECT_EQ(io::dataset_shape(io::open_dataset(file.get(), "/values").get()), (std::vector<hsize_t>{1u << 20}));
  // A failure inside fill leaves no temporary and no target.
  EXPECT_THROW(io::write_large_file_atomically(dir.file("failed.h5"), [](hid_t) { throw hnas::IoError("boom"); }),
               hnas::IoError);
  EXPECT_FALSE(std::filesystem::exists(dir.file("failed.h5")));
  EXPECT_TRUE(temporaries(dir.path(), "failed.h5").empty());
}

}  // namespace
