// SPDX-License-Identifier: Apache-2.0
// Compound tables, string datasets and atomic file replacement: round trips, the errors a
// caller or a bad file produces, the on-disk layout h5py/pandas read, and that a replaced
// file is either old or new, never partial.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "hnas/core/error.hpp"
#include "hnas/io/h5.hpp"
#include "hnas/io/results_table.hpp"
#include "support/test_support.hpp"

namespace {

using hnas::testing::message_of;
using hnas::testing::TempDir;

namespace io = hnas::io;

bool contains(const std::string& text, const std::string& fragment) { return text.find(fragment) != std::string::npos; }

io::Table sample_table() {
  io::Table table;
  table.columns = {
      {"cand_id", io::ColumnType::Int64, 0, "candidate number"},
      {"loss", io::ColumnType::Float64, 0, "nats per token"},
      {"arch", io::ColumnType::String, 8, "architecture code"},
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  table.rows = {
      {int64_t{0}, 2.5, std::string("attn")},
      {int64_t{-7}, nan, std::string("")},                                     // empty string, NaN
      {std::numeric_limits<int64_t>::min(), -1e300, std::string("abcdefgh")},  // all 8 bytes used
      {std::numeric_limits<int64_t>::max(), -std::numeric_limits<double>::infinity(), std::string("x y")},
  };
  return table;
}

// Cells compare equal, NaN included; the message names the row and column.
void expect_same_rows(const io::Table& actual, const io::Table& expected) {
  ASSERT_EQ(actual.rows.size(), expected.rows.size());
  for (size_t r = 0; r < expected.rows.size(); ++r) {
    ASSERT_EQ(actual.rows[r].size(), expected.rows[r].size()) << "row " << r;
    for (size_t c = 0; c < expected.rows[r].size(); ++c) {
      const io::Cell& a = actual.rows[r][c];
      const io::Cell& e = expected.rows[r][c];
      ASSERT_EQ(a.index(), e.index()) << "row " << r << " column " << c;
      if (const double* value = std::get_if<double>(&e); value != nullptr && std::isnan(*value)) {
        EXPECT_TRUE(std::isnan(std::get<double>(a))) << "row " << r << " column " << c;
      } else {
        EXPECT_EQ(a, e) << "row " << r << " column " << c;
      }
    }
  }
}

void expect_same_columns(const std::vector<io::Column>& actual, const std::vector<io::Column>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t c = 0; c < expected.size(); ++c) {
    EXPECT_EQ(actual[c].name, expected[c].name) << "column " << c;
    EXPECT_EQ(actual[c].type, expected[c].type) << "column " << c;
    EXPECT_EQ(actual[c].string_length, expected[c].string_length) << "column " << c;
    EXPECT_EQ(actual[c].unit_or_doc, expected[c].unit_or_doc) << "column " << c;
  }
}

std::vector<int32_t> read_ints(const std::string& path, const std::string& name) {
  io::H5File file = io::open_file_read_only(path);
  io::H5Dataset d = io::open_dataset(file.get(), name);
  return io::read_int32_slice(d.get(), 0, io::dataset_shape(d.get())[0]);
}

TEST(ResultsTable, round_trips_every_column_type) {
  TempDir dir;
  const std::string path = dir.file("t.h5");
  const io::Table table = sample_table();
  {
    io::H5File file = io::create_file(path);
    io::write_table(file.get(), "/runs/r0/search/candidates", table, "one row per candidate");
    file.close();
  }
  io::H5File file = io::open_file_read_only(path);
  const io::Table back = io::read_table(file.get(), "/runs/r0/search/candidates");
  expect_same_columns(back.columns, table.columns);
  expect_same_rows(back, table);

  io::H5Dataset d = io::open_dataset(file.get(), "/runs/r0/search/candidates");
  EXPECT_EQ(io::read_string_attribute(d.get(), "doc"), "one row per candidate");
  EXPECT_EQ(io::read_string_attribute(d.get(), "columns_doc"),
            "cand_id: candidate number\nloss: nats per token\narch: architecture code\n");
}

TEST(ResultsTable, stores_a_packed_little_endian_chunked_extendible_compound) {
  TempDir dir;
  io::H5File file = io::create_file(dir.file("layout.h5"));
  io::write_table(file.get(), "t", sample_table(), "");
  io::H5Dataset d = io::open_dataset(file.get(), "t");
  io::H5Type type(H5Dget_type(d.get()));
  ASSERT_EQ(H5Tget_class(type.get()), H5T_COMPOUND);
  EXPECT_EQ(H5Tget_size(type.get()), 8u + 8u + 8u);  // packed: no padding
  ASSERT_EQ(H5Tget_nmembers(type.get()), 3);
  EXPECT_EQ(H5Tget_member_offset(type.get(), 2), 16u);
  io::H5Type id_type(H5Tget_member_type(type.get(), 0));
  io::H5Type loss_type(H5Tget_member_type(type.get(), 1));
  io::H5Type arch_type(H5Tget_member_type(type.get(), 2));
  EXPECT_GT(H5Tequal(id_type.get(), H5T_STD_I64LE), 0);
  EXPECT_GT(H5Tequal(loss_type.get(), H5T_IEEE_F64LE), 0);
  EXPECT_EQ(H5Tget_size(arch_type.get()), 8u);
  EXPECT_EQ(H5Tget_strpad(arch_type.get()), H5T_STR_NULLPAD);
  EXPECT_EQ(H5Tget_cset(arch_type.get()), H5T_CSET_ASCII);
  EXPECT_EQ(H5Tis_variable_str(arch_type.get()), 0);

  io::H5Space space(H5Dget_space(d.get()));
  hsize_t dims = 0;
  hsize_t max_dims = 0;
  ASSERT_EQ(H5Sget_simple_extent_dims(space.get(), &dims, &max_dims), 1);
  EXPECT_EQ(dims, 4u);
  EXPECT_EQ(max_dims, H5S_UNLIMITED);
  io::H5Plist create_props(H5Dget_create_plist(d.get()));
  ASSERT_EQ(H5Pget_layout(create_props.get()), H5D_CHUNKED);
  hsize_t chunk = 0;
  ASSERT_EQ(H5Pget_chunk(create_props.get(), 1, &chunk), 1);
  EXPECT_GE(chunk, 1u);
  EXPECT_LE(chunk, 1024u);
}

TEST(ResultsTable, zero_rows_keep_the_columns) {
  TempDir dir;
  io::Table table = sample_table();
  table.rows.clear();
  io::H5File file = io::create_file(dir.file("empty.h5"));
  io::write_table(file.get(), "/a/empty", table, "nothing yet");
  const io::Table back = io::read_table(file.get(), "/a/empty");
  expect_same_columns(back.columns, table.columns);
  EXPECT_TRUE(back.rows.empty());
}

TEST(ResultsTable, too_long_string_names_column_and_row_and_writes_nothing) {
  TempDir dir;
  io::Table table = sample_table();
  table.rows[1][2] = std::string("ninechars");
  io::H5File file = io::create_file(dir.file("long.h5"));
  const std::string message = message_of<hnas::InternalError>([&] { io::write_table(file.get(), "/g/t", table, ""); });
  EXPECT_TRUE(contains(message, "long.h5")) << message;
  EXPECT_TRUE(contains(message, "\"/g/t\"")) << message;
  EXPECT_TRUE(contains(message, "row 1, column \"arch\"")) << message;
  EXPECT_TRUE(contains(message, "9 bytes")) << message;
  EXPECT_TRUE(contains(message, "column's 8")) << message;
  EXPECT_EQ(H5Lexists(file.get(), "/g", H5P_DEFAULT), 0);  // validated before creating anything
}

TEST(ResultsTable, rejects_malformed_columns_and_cells) {
  TempDir dir;
  io::H5File file = io::create_file(dir.file("bad.h5"));
  auto write = [&](const io::Table& table) { io::write_table(file.get(), "t", table, ""); };

  io::Table wrong_type = sample_table();
  wrong_type.rows[2][0] = 3.0;
  EXPECT_TRUE(contains(message_of<hnas::InternalError>([&] { write(wrong_type); }),
                       "row 2, column \"cand_id\" (Int64) holds another type"));

  io::Table short_row = sample_table();
  short_row.rows[3].pop_back();
  EXPECT_TRUE(contains(message_of<hnas::InternalError>([&] { write(short_row); }), "row 3 has 2 cells for 3 columns"));

  io::Table non_ascii = sample_table();
  non_ascii.rows[0][2] = std::string("\xc3\xa4");
  EXPECT_TRUE(contains(message_of<hnas::InternalError>([&] { write(non_ascii); }), "non-ASCII byte at offset 0"));

  io::Table duplicate = sample_table();
  duplicate.columns[1].name = "cand_id";
  EXPECT_TRUE(contains(message_of<hnas::InternalError>([&] { write(duplicate); }), "duplicate column name"));

  io::Table zero_length = sample_table();
  zero_length.columns[2].string_length = 0;
  EXPECT_TRUE(contains(message_of<hnas::InternalError>([&] { write(zero_length); }), "string_length > 0"));
  EXPECT_EQ(H5Lexists(file.get(), "t", H5P_DEFAULT), 0);
}

TEST(ResultsTable, append_rows_extends_across_chunks) {
  TempDir dir;
  const std::string path = dir.file("append.h5");
  io::Table table = sample_table();
  io::Table more;
  more.columns = table.columns;
  for (int64_t i = 0; i < 1500; ++i) {  // crosses a 1,024-row chunk
    more.rows.push_back({i, 0.5 * static_cast<double>(i), std::string(static_cast<size_t>(i % 9), 'z')});
  }
  {
    io::H5File file = io::create_file(path);
    io::write_table(file.get(), "/t", table, "");
    io::append_rows(file.get(), "/t", more);
    io::append_rows(file.get(), "/t", io::Table{table.columns, {}});  // nothing to add
    io::Table empty_start = table;
    empty_start.rows.clear();
    io::write_table(file.get(), "/e", empty_start, "");
    io::append_rows(file.get(), "/e", io::Table{table.columns, {table.rows[0]}});
    file.close();
  }
  io::H5File file = io::open_file_read_only(path);
  io::Table expected = table;
  expected.rows.insert(expected.rows.end(), more.rows.begin(), more.rows.end());
  expect_same_rows(io::read_table(file.get(), "/t"), expected);
  expect_same_rows(io::read_table(file.get(), "/e"), io::Table{table.columns, {table.rows[0]}});
}

TEST(ResultsTable, append_rows_rejects_other_columns_and_bad_rows) {
  TempDir dir;
  io::H5File file = io::create_file(dir.file("mismatch.h5"));
  const io::Table table = sample_table();
  io::write_table(file.get(), "/t", table, "");

  io::Table longer_string{table.columns, {}};
  longer_string.columns[2].string_length = 9;
  std::string message = message_of<hnas::InternalError>([&] { io::append_rows(file.get(), "/t", longer_string); });
  EXPECT_TRUE(contains(message, "mismatch.h5:/t")) << message;
  EXPECT_TRUE(contains(message, "other columns")) << message;
  EXPECT_TRUE(contains(message, "arch:String[9]")) << message;

  io::Table renamed{table.columns, {}};
  renamed.columns[0].name = "id";
  EXPECT_THROW(io::append_rows(file.get(), "/t", renamed), hnas::InternalError);

  io::Table too_long{table.columns, {table.rows[0]}};
  too_long.rows[0][2] = std::string("123456789");
  message = message_of<hnas::InternalError>([&] { io::append_rows(file.get(), "/t", too_long); });
  EXPECT_TRUE(contains(message, "row 0, column \"arch\"")) << message;

  message = message_of<hnas::InputError>([&] { io::append_rows(file.get(), "/missing", table); });
  EXPECT_TRUE(contains(message, "no dataset \"/missing\"")) << message;
  EXPECT_EQ(io::read_table(file.get(), "/t").rows.size(), table.rows.size());
}

TEST(ResultsTable, read_table_errors_name_file_and_path) {
  TempDir dir;
  const std::string path = dir.file("errors.h5");
  {
    io::H5File file = io::create_file(path);
    io::write_dataset_1d(file.get(), "/g/ints", std::vector<int32_t>{1, 2});
    // A compound with a variable-length string member, as h5py writes for str fields.
    io::H5Type vlen(H5Tcopy(H5T_C_S1));
    ASSERT_GE(H5Tset_size(vlen.get(), H5T_VARIABLE), 0);
    io::H5Type compound(H5Tcreate(H5T_COMPOUND, sizeof(int64_t) + sizeof(char*)));
    ASSERT_GE(H5Tinsert(compound.get(), "n", 0, H5T_NATIVE_INT64), 0);
    ASSERT_GE(H5Tinsert(compound.get(), "label", sizeof(int64_t), vlen.get()), 0);
    const hsize_t size = 0;
    io::H5Space space(H5Screate_simple(1, &size, nullptr));
    io::H5Dataset d(
        H5Dcreate2(file.get(), "/vlen", compound.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    ASSERT_TRUE(d.valid());
  }
  io::H5File file = io::open_file_read_only(path);
  std::string message = message_of<hnas::InputError>([&] { io::read_table(file.get(), "/g/missing"); });
  EXPECT_TRUE(contains(message, path)) << message;
  EXPECT_TRUE(contains(message, "no dataset \"/g/missing\"")) << message;

  message = message_of<hnas::InputError>([&] { io::read_table(file.get(), "/g/ints"); });
  EXPECT_TRUE(contains(message, path + ":/g/ints")) << message;
  EXPECT_TRUE(contains(message, "not a table")) << message;
  EXPECT_TRUE(contains(message, "integer")) << message;

  message = message_of<hnas::InputError>([&] { io::read_table(file.get(), "/vlen"); });
  EXPECT_TRUE(contains(message, path + ":/vlen")) << message;
  EXPECT_TRUE(contains(message, "column \"label\"")) << message;
  EXPECT_TRUE(contains(message, "variable-length string")) << message;
}

TEST(ResultsTable, read_table_converts_other_numeric_and_string_widths) {
  TempDir dir;
  io::H5File file = io::create_file(dir.file("foreign.h5"));
  // int32, float32 and a NUL-terminated 4-byte string: what a numpy/h5py writer might use.
  struct Record {
    int32_t step;
    float value;
    char tag[4];
  };
  io::H5Type tag(H5Tcopy(H5T_C_S1));
  ASSERT_GE(H5Tset_size(tag.get(), 4), 0);
  io::H5Type compound(H5Tcreate(H5T_COMPOUND, sizeof(Record)));
  ASSERT_GE(H5Tinsert(compound.get(), "step", HOFFSET(Record, step), H5T_NATIVE_INT32), 0);
  ASSERT_GE(H5Tinsert(compound.get(), "value", HOFFSET(Record, value), H5T_NATIVE_FLOAT), 0);
  ASSERT_GE(H5Tinsert(compound.get(), "tag", HOFFSET(Record, tag), tag.get()), 0);
  const Record records[2] = {{-3, 0.25f, {'a', 'b', 0, 0}}, {40000, -1.5f, {'w', 'x', 'y', 0}}};
  const hsize_t size = 2;
  io::H5Space space(H5Screate_simple(1, &size, nullptr));
  io::H5Dataset d(H5Dcreate2(file.get(), "f", compound.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  ASSERT_GE(H5Dwrite(d.get(), compound.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, records), 0);
  d.reset();

  const io::Table back = io::read_table(file.get(), "f");
  ASSERT_EQ(back.columns.size(), 3u);
  EXPECT_EQ(back.columns[0].type, io::ColumnType::Int64);
  EXPECT_EQ(back.columns[1].type, io::ColumnType::Float64);
  EXPECT_EQ(back.columns[2].type, io::ColumnType::String);
  EXPECT_EQ(back.columns[2].string_length, 4u);
  EXPECT_EQ(back.columns[0].unit_or_doc, "");  // no columns_doc attribute
  expect_same_rows(back,
                   io::Table{{}, {{int64_t{-3}, 0.25, std::string("ab")}, {int64_t{40000}, -1.5, std::string("wxy")}}});
}

TEST(StringDataset, round_trips_utf8_text) {
  TempDir dir;
  const std::string path = dir.file("s.h5");
  const std::string text = "[search]\nname = \"Gr\xc3\xbc\xc3\x9f\x65 \xe2\x9c\x93\"\n\tend";
  {
    io::H5File file = io::create_file(path);
    io::write_string_dataset(file.get(), "/config/effective_ini", text, "the effective configuration");
    io::write_string_dataset(file.get(), "empty", "", "nothing");
    EXPECT_THROW(io::write_string_dataset(file.get(), "empty", "again", "again"), hnas::IoError);
    EXPECT_THROW(io::write_string_dataset(file.get(), "nul", std::string("a\0b", 3), "nul"), hnas::InternalError);
    io::write_dataset_1d(file.get(), "ints", std::vector<int32_t>{1});
    file.close();
  }
  io::H5File file = io::open_file_read_only(path);
  EXPECT_EQ(io::read_string_dataset(file.get(), "/config/effective_ini"), text);
  EXPECT_EQ(io::read_string_dataset(file.get(), "empty"), "");
  io::H5Dataset d = io::open_dataset(file.get(), "/config/effective_ini");
  io::H5Type type(H5Dget_type(d.get()));
  EXPECT_GT(H5Tis_variable_str(type.get()), 0);
  EXPECT_EQ(H5Tget_cset(type.get()), H5T_CSET_UTF8);
  d.reset();

  std::string message = message_of<hnas::InputError>([&] { io::read_string_dataset(file.get(), "/nope"); });
  EXPECT_TRUE(contains(message, path)) << message;
  message = message_of<hnas::InputError>([&] { io::read_string_dataset(file.get(), "ints"); });
  EXPECT_TRUE(contains(message, path + ":/ints is not a string dataset")) << message;
}

TEST(StringDataset, reads_fixed_length_strings) {
  TempDir dir;
  io::H5File file = io::create_file(dir.file("fixed.h5"));
  io::H5Type fixed(H5Tcopy(H5T_C_S1));
  ASSERT_GE(H5Tset_size(fixed.get(), 6), 0);
  io::H5Space scalar(H5Screate(H5S_SCALAR));
  io::H5Dataset d(H5Dcreate2(file.get(), "fixed", fixed.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  const char text[6] = {'a', 'b', 'c', 0, 0, 0};
  ASSERT_GE(H5Dwrite(d.get(), fixed.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, text), 0);
  d.reset();
  EXPECT_EQ(io::read_string_dataset(file.get(), "fixed"), "abc");
}

// Whether a temporary of `path` ("<path>.tmp.<host>.<pid>.<n>") exists.
bool has_temporary(const std::string& path) {
  const std::filesystem::path target(path);
  for (const auto& entry : std::filesystem::directory_iterator(target.parent_path())) {
    if (entry.path().filename().string().rfind(target.filename().string() + ".tmp.", 0) == 0) return true;
  }
  return false;
}

TEST(WriteFileAtomically, new_content_replaces_old_and_no_tmp_remains) {
  TempDir dir;
  const std::string path = dir.file("results.h5");
  io::write_file_atomically(path, [](hid_t file) { io::write_dataset_1d(file, "v", std::vector<int32_t>{1}); });
  EXPECT_EQ(read_ints(path, "v"), std::vector<int32_t>{1});
  io::write_file_atomically(path, [](hid_t file) { io::write_dataset_1d(file, "v", std::vector<int32_t>{2, 2}); });
  EXPECT_EQ(read_ints(path, "v"), (std::vector<int32_t>{2, 2}));
  EXPECT_FALSE(has_temporary(path));
}

TEST(WriteFileAtomically, old_content_survives_a_throwing_fill) {
  TempDir dir;
  const std::string path = dir.file("results.h5");
  io::write_file_atomically(path, [](hid_t file) { io::write_dataset_1d(file, "v", std::vector<int32_t>{1}); });
  bool tmp_existed_during_fill = false;
  EXPECT_THROW(io::write_file_atomically(path,
                                         [&](hid_t file) {
                                           io::write_dataset_1d(file, "v", std::vector<int32_t>{9});
                                           tmp_existed_during_fill = has_temporary(path);
                                           throw std::runtime_error("fill failed");
                                         }),
               std::runtime_error);
  EXPECT_TRUE(tmp_existed_during_fill);
  EXPECT_FALSE(has_temporary(path));
  EXPECT_EQ(read_ints(path, "v"), std::vector<int32_t>{1});
}

TEST(WriteFileAtomically, replaces_a_file_another_handle_still_reads) {
  TempDir dir;
  const std::string path = dir.file("results.h5");
  io::write_file_atomically(path, [](hid_t file) { io::write_dataset_1d(file, "v", std::vector<int32_t>{1, 2, 3}); });
  io::H5File old_file = io::open_file_read_only(path);  // holds HDF5's lock on the old inode
  io::write_file_atomically(path, [](hid_t file) { io::write_dataset_1d(file, "v", std::vector<int32_t>{7}); });
  {
    io::H5Dataset d = io::open_dataset(old_file.get(), "v");
    EXPECT_EQ(io::read_int32_slice(d.get(), 0, 3), (std::vector<int32_t>{1, 2, 3}));
  }
  EXPECT_EQ(read_ints(path, "v"), std::vector<int32_t>{7});
}

TEST(WriteFileAtomically, closes_objects_fill_left_open_after_writing_their_data) {
  TempDir dir;
  const std::string path = dir.file("results.h5");
  hid_t leaked = H5I_INVALID_HID;
  hid_t leaked_chunked = H5I_INVALID_HID;
  io::write_file_atomically(path, [&](hid_t file) {
    leaked = io::write_dataset_1d(file, "v", std::vector<int32_t>{5}).release();
    // A chunked dataset's data sits in its chunk cache until flushed.
    leaked_chunked = io::write_dataset_1d(file, "c", std::vector<int32_t>(100, 4), io::DatasetOptions{16, 1}).release();
  });
  EXPECT_LE(H5Iis_valid(leaked), 0);  // closed with the file
  EXPECT_LE(H5Iis_valid(leaked_chunked), 0);
  EXPECT_EQ(read_ints(path, "v"), std::vector<int32_t>{5});
  EXPECT_EQ(read_ints(path, "c"), std::vector<int32_t>(100, 4));
  EXPECT_FALSE(has_temporary(path));
}

TEST(WriteFileAtomically, failures_name_the_path) {
  TempDir dir;
  const std::string path = dir.file("no/such/dir/results.h5");
  bool filled = false;
  const std::string message =
      message_of<hnas::IoError>([&] { io::write_file_atomically(path, [&](hid_t) { filled = true; }); });
  EXPECT_TRUE(contains(message, path)) << message;
  EXPECT_FALSE(filled);

  // Renaming a file over a non-empty directory fails after the tmp file was complete.
  const std::string blocked = dir.file("blocked.h5");
  std::filesystem::create_directories(blocked + "/child");
  const std::string rename_message = message_of<hnas::IoError>([&] {
    io::write_file_atomically(blocked, [](hid_t file) { io::write_dataset_1d(file, "v", std::vector<int32_t>{1}); });
  });
  EXPECT_TRUE(contains(rename_message, "cannot rename " + blocked + ".tmp.")) << rename_message;
  EXPECT_TRUE(contains(rename_message, " to " + blocked + ": ")) << rename_message;
  EXPECT_FALSE(has_temporary(blocked));
}

// The layout promise to users: h5py gives a structured array and pandas typed columns.
// Skipped where no Python with h5py is installed.
constexpr const char* kPandasCheck = R"PY(
import sys
try:
    import h5py
    import numpy as np
except ImportError:
    sys.exit(77)
with h5py.File(sys.argv[1], "r") as f:
    d = f["runs/r0/search/candidates"]
    a = d[()]
    assert d.maxshape == (None,), d.maxshape
    assert d.chunks is not None and d.compression in ("gzip", None), (d.chunks, d.compression)
    assert a.dtype.names == ("cand_id", "loss", "arch"), a.dtype
    assert a.dtype["cand_id"] == np.dtype("<i8"), a.dtype
    assert a.dtype["loss"] == np.dtype("<f8"), a.dtype
    assert a.dtype["arch"] == np.dtype("S8"), a.dtype
    assert a["cand_id"].tolist() == [0, -7, -2**63, 2**63 - 1], a
    assert a["loss"][0] == 2.5 and np.isnan(a["loss"][1]), a
    assert a["arch"].tolist() == [b"attn", b"", b"abcdefgh", b"x y"], a
    assert d.attrs["doc"] == "one row per candidate", d.attrs["doc"]
    assert d.attrs["columns_doc"].splitlines()[1] == "loss: nats per token"
    empty = f["runs/r0/empty"][()]
    assert len(empty) == 0 and empty.dtype.names == ("cand_id", "loss", "arch"), empty.dtype
    text = f["config/effective_ini"].asstr()[()]
    assert text == "name = \u00e4\u2713\n", repr(text)
    try:
        import pandas as pd
    except ImportError:
        print("pandas not installed: checked the structured array only")
        sys.exit(0)
    df = pd.DataFrame(d[()])
    assert list(df.columns) == ["cand_id", "loss", "arch"], df.columns
    assert str(df["cand_id"].dtype) == "int64", df.dtypes
    assert str(df["loss"].dtype) == "float64", df.dtypes
    assert df["arch"].str.decode("ascii").tolist() == ["attn", "", "abcdefgh", "x y"], df
    assert len(pd.DataFrame(empty).columns) == 3
    print("pandas", pd.__version__, "ok")
)PY";

TEST(ResultsTable, loads_into_h5py_and_pandas) {
  const char* configured = std::getenv("HNAS_TEST_PYTHON");
  const std::string python =
      configured != nullptr ? configured : (::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "");
  if (python.empty()) GTEST_SKIP() << "no /usr/bin/python3 (set HNAS_TEST_PYTHON)";
  TempDir dir;
  const std::string path = dir.file("results.h5");
  io::write_file_atomically(path, [](hid_t file) {
    io::Table table = sample_table();
    io::write_table(file, "/runs/r0/search/candidates", table, "one row per candidate");
    table.rows.clear();
    io::write_table(file, "/runs/r0/empty", table, "");
    io::write_string_dataset(file, "/config/effective_ini", "name = \xc3\xa4\xe2\x9c\x93\n", "utf-8 text");
  });
  const std::string script = dir.file("check.py");
  std::ofstream(script) << kPandasCheck;
  const std::string output = dir.file("python.out");
  const int status = std::system((python + " " + script + " " + path + " > " + output + " 2>&1").c_str());
  std::ifstream in(output);
  std::stringstream printed;
  printed << in.rdbuf();
  ASSERT_TRUE(WIFEXITED(status)) << printed.str();
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << python << " has no h5py";
  EXPECT_EQ(WEXITSTATUS(status), 0) << printed.str();
  std::cout << "  " << python << ": " << printed.str();
}

}  // namespace
