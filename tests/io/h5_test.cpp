// SPDX-License-Identifier: Apache-2.0
// The HDF5 RAII layer: handles close what they own, helpers round-trip data and
// attributes, and every failure carries a message naming the file and the HDF5 stack.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "hnas/core/error.hpp"
#include "hnas/io/h5.hpp"
#include "support/test_support.hpp"

namespace {

using hnas::testing::message_of;
using hnas::testing::TempDir;

namespace io = hnas::io;

bool contains(const std::string& text, const std::string& fragment) { return text.find(fragment) != std::string::npos; }

// Objects HDF5 still has open in `file`, the file itself included.
ssize_t open_objects(hid_t file) { return H5Fget_obj_count(file, H5F_OBJ_ALL); }

TEST(H5Handle, moves_ownership_and_closes_exactly_once) {
  TempDir dir;
  io::H5File file = io::create_file(dir.file("a.h5"));
  ASSERT_TRUE(file.valid());
  {
    io::H5Dataset a = io::write_dataset_1d(file.get(), "/x", std::vector<int32_t>{1, 2, 3});
    EXPECT_EQ(open_objects(file.get()), 2);
    io::H5Dataset b(std::move(a));
    EXPECT_FALSE(a.valid());
    EXPECT_TRUE(b.valid());
    io::H5Dataset c = io::open_dataset(file.get(), "/x");
    EXPECT_EQ(open_objects(file.get()), 3);
    c = std::move(b);  // closes what c held
    EXPECT_EQ(open_objects(file.get()), 2);
    const hid_t raw = c.release();
    EXPECT_FALSE(c.valid());
    EXPECT_GE(H5Dclose(raw), 0);
    EXPECT_EQ(open_objects(file.get()), 1);
  }
  EXPECT_EQ(open_objects(file.get()), 1);
  file.close();
  EXPECT_FALSE(file.valid());
}

TEST(H5Helpers, leave_no_open_objects_behind) {
  TempDir dir;
  const std::string path = dir.file("b.h5");
  {
    io::H5File file = io::create_file(path);
    io::write_dataset_1d(file.get(), "/group/tokens", std::vector<uint16_t>(100, 7),
                         io::DatasetOptions{/*chunk=*/16, /*deflate_level=*/1});
    io::write_string_attribute(file.get(), "schema", "hnas/1");
    io::write_int_attribute(file.get(), "count", 3);
    io::H5Dataset d = io::open_dataset(file.get(), "/group/tokens");
    io::write_double_attribute(d.get(), "scale", 0.5);
    d.reset();
    EXPECT_EQ(open_objects(file.get()), 1);
  }
  io::H5File file = io::open_file_read_only(path);
  {
    io::H5Dataset d = io::open_dataset(file.get(), "/group/tokens");
    EXPECT_EQ(io::read_int32_slice(d.get(), 10, 5), std::vector<int32_t>(5, 7));
    EXPECT_EQ(io::dataset_shape(d.get()), std::vector<hsize_t>{100});
    EXPECT_EQ(io::read_double_attribute(d.get(), "scale"), 0.5);
    EXPECT_THROW(io::read_int32_slice(d.get(), 99, 2), hnas::InputError);
    EXPECT_THROW(io::read_string_attribute(d.get(), "nope"), hnas::InputError);
  }
  EXPECT_EQ(io::read_string_attribute(file.get(), "schema"), "hnas/1");
  EXPECT_EQ(open_objects(file.get()), 1);
}

TEST(H5Helpers, read_int32_slice_converts_any_integer_storage) {
  TempDir dir;
  const std::string path = dir.file("c.h5");
  {
    io::H5File file = io::create_file(path);
    io::write_dataset_1d(file.get(), "u8", std::vector<uint8_t>{0, 1, 255});
    io::write_dataset_1d(file.get(), "u32", std::vector<uint32_t>{5, 70000, 9});
    io::write_dataset_1d(file.get(), "i64", std::vector<int64_t>{-3, 1 << 20, 4});
    io::write_dataset_1d(file.get(), "empty", std::vector<int32_t>{}, io::DatasetOptions{8, 0});
  }
  io::H5File file = io::open_file_read_only(path);
  auto read_all = [&](const char* name) {
    io::H5Dataset d = io::open_dataset(file.get(), name);
    return io::read_int32_slice(d.get(), 0, io::dataset_shape(d.get())[0]);
  };
  EXPECT_EQ(read_all("u8"), (std::vector<int32_t>{0, 1, 255}));
  EXPECT_EQ(read_all("u32"), (std::vector<int32_t>{5, 70000, 9}));
  EXPECT_EQ(read_all("i64"), (std::vector<int32_t>{-3, 1 << 20, 4}));
  EXPECT_TRUE(read_all("empty").empty());
}

TEST(H5Helpers, reject_float_datasets_with_a_clear_message) {
  TempDir dir;
  const std::string path = dir.file("f.h5");
  {
    io::H5File file = io::create_file(path);
    io::write_dataset_1d(file.get(), "/tokens", std::vector<float>{1.f, 2.f});
  }
  io::H5File file = io::open_file_read_only(path);
  io::H5Dataset d = io::open_dataset(file.get(), "/tokens");
  EXPECT_FALSE(io::is_integer_dataset(d.get()));
  const std::string message = message_of<hnas::InputError>([&] { io::read_int32_slice(d.get(), 0, 2); });
  EXPECT_TRUE(contains(message, "f.h5:/tokens")) << message;
  EXPECT_TRUE(contains(message, "floating-point")) << message;
}

TEST(H5Helpers, attributes_round_trip_and_replace) {
  TempDir dir;
  io::H5File file = io::create_file(dir.file("attr.h5"));
  io::write_string_attribute(file.get(), "note", "first");
  io::write_string_attribute(file.get(), "note", "second, längere UTF-8");
  io::write_int_attribute(file.get(), "steps", -42);
  io::write_double_attribute(file.get(), "lr", 3e-4);
  EXPECT_TRUE(io::has_attribute(file.get(), "note"));
  EXPECT_FALSE(io::has_attribute(file.get(), "missing"));
  EXPECT_EQ(io::read_string_attribute(file.get(), "note"), "second, längere UTF-8");
  EXPECT_EQ(io::read_int_attribute(file.get(), "steps"), -42);
  EXPECT_EQ(io::read_double_attribute(file.get(), "lr"), 3e-4);
  EXPECT_EQ(io::read_double_attribute(file.get(), "steps"), -42.0);
  EXPECT_THROW(io::read_int_attribute(file.get(), "note"), hnas::InputError);

  // Fixed-length strings, as h5py writes numpy byte strings.
  io::H5Type fixed(H5Tcopy(H5T_C_S1));
  ASSERT_GE(H5Tset_size(fixed.get(), 8), 0);
  io::H5Space scalar(H5Screate(H5S_SCALAR));
  io::H5Attribute attr(H5Acreate2(file.get(), "fixed", fixed.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT));
  const char text[8] = {'a', 'b', 'c', 0, 0, 0, 0, 0};
  ASSERT_GE(H5Awrite(attr.get(), fixed.get(), text), 0);
  attr.reset();
  EXPECT_EQ(io::read_string_attribute(file.get(), "fixed"), "abc");
  const std::string missing = message_of<hnas::InputError>([&] { io::read_string_attribute(file.get(), "absent"); });
  EXPECT_TRUE(contains(missing, "attr.h5")) << missing;
  EXPECT_TRUE(contains(missing, "no attribute \"absent\"")) << missing;
}

TEST(H5Errors, open_failures_name_the_path) {
  TempDir dir;
  const std::string missing = dir.file("missing.h5");
  std::string message = message_of<hnas::InputError>([&] { io::open_file_read_only(missing); });
  EXPECT_TRUE(contains(message, missing)) << message;
  EXPECT_TRUE(contains(message, "No such file")) << message;

  const std::string text = dir.file("text.h5");
  std::ofstream(text) << "this is not HDF5\n";
  message = message_of<hnas::InputError>([&] { io::open_file_read_only(text); });
  EXPECT_TRUE(contains(message, text)) << message;
  EXPECT_TRUE(contains(message, "not an HDF5 file")) << message;

  const std::string real = dir.file("real.h5");
  io::create_file(real);
  io::H5File file = io::open_file_read_only(real);
  message = message_of<hnas::InputError>([&] { io::open_dataset(file.get(), "/a/b"); });
  EXPECT_TRUE(contains(message, "real.h5")) << message;
  EXPECT_TRUE(contains(message, "no dataset \"/a/b\"")) << message;
  EXPECT_EQ(open_objects(file.get()), 1);

  message = message_of<hnas::IoError>([&] { io::create_file(dir.file("no/such/dir/x.h5")); });
  EXPECT_TRUE(contains(message, "no/such/dir/x.h5")) << message;
  EXPECT_TRUE(contains(message, "HDF5 error stack")) << message;
}

TEST(H5Errors, damaged_files_and_directories_get_one_clear_first_line) {
  TempDir dir;
  const std::string truncated = dir.file("truncated.h5");
  {
    io::H5File file = io::create_file(truncated);
    io::write_dataset_1d(file.get(), "/x", std::vector<double>(10000, 1.0));
  }
  std::filesystem::resize_file(truncated, std::filesystem::file_size(truncated) / 2);
  std::string message = message_of<hnas::InputError>([&] { io::open_file_read_only(truncated); });
  EXPECT_EQ(message.substr(0, message.find('\n')), truncated + " is damaged (truncated or not an HDF5 file)");
  // HDF5's stack says "unable to read superblock": that is no lock failure.
  EXPECT_FALSE(contains(message, "HDF5_USE_FILE_LOCKING")) << message;

  const std::string directory = dir.file("dir.h5");
  std::filesystem::create_directories(directory);
  message = message_of<hnas::InputError>([&] { io::open_file_read_only(directory); });
  EXPECT_EQ(message, directory + " is a directory, not an HDF5 file");
}

// Pushes one record with `text` onto HDF5's error stack, as a failing library call would.
void push_error(const char* text) {
  H5Epush2(H5E_DEFAULT, __FILE__, "test", __LINE__, H5E_ERR_CLS, H5E_FILE, H5E_WRITEERROR, "%s", text);
}

TEST(H5Errors, lock_hint_only_for_real_lock_failures) {
  io::disable_hdf5_error_printing();
  for (const char* unrelated :
       {"unable to read superblock", "block write failed", "H5D__contig_writevv_sieve_cb block write failed"}) {
    push_error(unrelated);
    const std::string message = message_of<hnas::IoError>([] { io::throw_with_error_stack<hnas::IoError>("ctx"); });
    EXPECT_FALSE(contains(message, "HDF5_USE_FILE_LOCKING")) << message;
  }
  for (const char* lock_failure :
       {"unable to lock file, errno = 11, error message = 'Resource temporarily unavailable'",
        "file locking disabled on this file system (use HDF5_USE_FILE_LOCKING environment variable to override)"}) {
    push_error(lock_failure);
    const std::string message = message_of<hnas::IoError>([] { io::throw_with_error_stack<hnas::IoError>("ctx"); });
    EXPECT_TRUE(contains(message, "HDF5_USE_FILE_LOCKING=FALSE")) << message;
  }
}

TEST(H5Errors, a_full_disk_in_the_stack_is_named) {
  io::disable_hdf5_error_printing();
  push_error("file write failed: errno = 28, error message = 'No space left on device'");
  std::string message = message_of<hnas::IoError>([] { io::throw_with_error_stack<hnas::IoError>("ctx"); });
  EXPECT_EQ(message.rfind("ctx\n  no space left on device (or quota or file size limit exceeded)", 0), 0u) << message;
  EXPECT_FALSE(contains(message, "HDF5_USE_FILE_LOCKING")) << message;
  push_error("block write failed");
  message = message_of<hnas::IoError>([] { io::throw_with_error_stack<hnas::IoError>("ctx"); });
  EXPECT_FALSE(contains(message, "no space left")) << message;
}

TEST(H5Errors, check_macro_carries_the_hdf5_error_stack) {
  io::disable_hdf5_error_printing();
  const std::string message = message_of<hnas::IoError>([] { HNAS_CHECK_H5(H5Dopen2(-1, "/x", H5P_DEFAULT)); });
  EXPECT_TRUE(contains(message, "H5Dopen2(-1, \"/x\", H5P_DEFAULT)")) << message;
  EXPECT_TRUE(contains(message, "h5_test.cpp")) << message;
  EXPECT_TRUE(contains(message, "HDF5 error stack:\n  #000:")) << message;
  EXPECT_TRUE(contains(message, "H5Dopen2()")) << message;
  // The stack was consumed: the next walk starts empty.
  EXPECT_EQ(io::take_error_stack(), "");
  // On success the macro passes the call's result through.
  io::H5Type copy(HNAS_CHECK_H5(H5Tcopy(H5T_NATIVE_INT32)));
  EXPECT_GT(HNAS_CHECK_H5(H5Iis_valid(copy.get())), 0);
}

TEST(H5Errors, lock_failure_names_the_environment_variable) {
  const char* setting = std::getenv("HDF5_USE_FILE_LOCKING");
  if (setting != nullptr && std::string(setting) == "FALSE") {
    GTEST_SKIP() << "file locking is disabled in this environment";
  }
  TempDir dir;
  const std::string path = dir.file("locked.h5");
  io::create_file(path);
  // HDF5 takes a flock() on open; an exclusive lock held through another descriptor is
  // what a concurrent writer (or a file system without locks) looks like to the reader.
  const int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  const std::string message = message_of<hnas::InputError>([&] { io::open_file_read_only(path); });
  ::close(fd);
  EXPECT_TRUE(contains(message, path)) << message;
  EXPECT_TRUE(contains(message, "HDF5_USE_FILE_LOCKING=FALSE")) << message;
}

}  // namespace
