// SPDX-License-Identifier: Apache-2.0
#include "hnas/io/results_table.hpp"

#include <algorithm>
#include <cstring>
#include <set>
#include <sstream>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/io/h5.hpp"

namespace hnas::io {
namespace {

// Chunks stay within HDF5's default 1 MiB per-dataset chunk cache.
constexpr hsize_t kMaxChunkRows = 1024;
constexpr size_t kMaxChunkBytes = size_t{1} << 20;

enum class Storage { File, Memory };

const char* type_name(ColumnType type) {
  switch (type) {
    case ColumnType::Int64:
      return "Int64";
    case ColumnType::Float64:
      return "Float64";
    case ColumnType::String:
      return "String";
  }
  return "?";
}

const char* class_name(H5T_class_t cls) {
  switch (cls) {
    case H5T_INTEGER:
      return "integer";
    case H5T_FLOAT:
      return "floating-point";
    case H5T_TIME:
      return "time";
    case H5T_STRING:
      return "string";
    case H5T_BITFIELD:
      return "bitfield";
    case H5T_OPAQUE:
      return "opaque";
    case H5T_COMPOUND:
      return "compound";
    case H5T_REFERENCE:
      return "reference";
    case H5T_ENUM:
      return "enum (h5py stores bool as enum)";
    case H5T_VLEN:
      return "variable-length sequence";
    case H5T_ARRAY:
      return "array";
    default:
      return "unknown";
  }
}

size_t column_size(const Column& column) {
  return column.type == ColumnType::String ? column.string_length : sizeof(int64_t);
}

size_t row_size(const std::vector<Column>& columns) {
  size_t size = 0;
  for (const Column& column : columns) size += column_size(column);
  return size;
}

// Malformed columns are caller bugs, caught before any HDF5 object is created.
void validate_columns(const std::vector<Column>& columns, const std::string& what) {
  HNAS_CHECK(!columns.empty(), InternalError, what << ": a table needs at least one column");
  std::set<std::string> names;
  for (size_t c = 0; c < columns.size(); ++c) {
    const Column& column = columns[c];
    HNAS_CHECK(!column.name.empty(), InternalError, what << ": column " << c << " has an empty name");
    HNAS_CHECK(
        column.name.find('\n') == std::string::npos && column.unit_or_doc.find('\n') == std::string::npos,
        InternalError,
        what << ": column \"" << column.name << "\": name and doc must be one line (columns_doc has one per column)");
    HNAS_CHECK(names.insert(column.name).second, InternalError,
               what << ": duplicate column name \"" << column.name << "\"");
    HNAS_CHECK(column.type != ColumnType::String || column.string_length > 0, InternalError,
               what << ": String column \"" << column.name << "\" needs string_length > 0");
  }
}

H5Type fixed_string_type(size_t length, H5T_cset_t cset) {
  H5Type type(HNAS_CHECK_H5(H5Tcopy(H5T_C_S1)));
  HNAS_CHECK_H5(H5Tset_size(type.get(), length));
  HNAS_CHECK_H5(H5Tset_strpad(type.get(), H5T_STR_NULLPAD));
  HNAS_CHECK_H5(H5Tset_cset(type.get(), cset));
  return type;
}

H5Type utf8_string_type() {
  H5Type type(HNAS_CHECK_H5(H5Tcopy(H5T_C_S1)));
  HNAS_CHECK_H5(H5Tset_size(type.get(), H5T_VARIABLE));
  HNAS_CHECK_H5(H5Tset_cset(type.get(), H5T_CSET_UTF8));
  return type;
}

// Packed (no padding) in both the file and memory, so rows are plain byte runs; HDF5
// converts the native memory numbers to the little-endian file types.
H5Type compound_type(const std::vector<Column>& columns, Storage storage) {
  H5Type compound(HNAS_CHECK_H5(H5Tcreate(H5T_COMPOUND, row_size(columns))));
  size_t offset = 0;
  for (const Column& column : columns) {
    switch (column.type) {
      case ColumnType::Int64:
        HNAS_CHECK_H5(H5Tinsert(compound.get(), column.name.c_str(), offset,
                                storage == Storage::File ? H5T_STD_I64LE : H5T_NATIVE_INT64));
        break;
      case ColumnType::Float64:
        HNAS_CHECK_H5(H5Tinsert(compound.get(), column.name.c_str(), offset,
                                storage == Storage::File ? H5T_IEEE_F64LE : H5T_NATIVE_DOUBLE));
        break;
      case ColumnType::String: {
        H5Type text = fixed_string_type(column.string_length, H5T_CSET_ASCII);
        HNAS_CHECK_H5(H5Tinsert(compound.get(), column.name.c_str(), offset, text.get()));
        break;
      }
    }
    offset += column_size(column);
  }
  return compound;
}

std::string describe_columns(const std::vector<Column>& columns) {
  std::ostringstream text;
  for (size_t c = 0; c < columns.size(); ++c) {
    text << (c ? ", " : "") << columns[c].name << ":" << type_name(columns[c].type);
    if (columns[c].type == ColumnType::String) text << "[" << columns[c].string_length << "]";
  }
  return text.str();
}

// Validates every cell and lays the rows out as the packed memory compound.
std::vector<unsigned char> pack_rows(const std::vector<Column>& columns, const std::vector<std::vector<Cell>>& rows,
                                     const std::string& what) {
  const size_t stride = row_size(columns);
  std::vector<unsigned char> buffer(stride * rows.size(), 0);
  for (size_t r = 0; r < rows.size(); ++r) {
    const std::vector<Cell>& row = rows[r];
    HNAS_CHECK(row.size() == columns.size(), InternalError,
               what << ": row " << r << " has " << row.size() << " cells for " << columns.size() << " columns");
    unsigned char* out = buffer.data() + r * stride;
    for (size_t c = 0; c < columns.size(); ++c) {
      const Column& column = columns[c];
      const Cell& cell = row[c];
      switch (column.type) {
        case ColumnType::Int64: {
          const int64_t* value = std::get_if<int64_t>(&cell);
          HNAS_CHECK(value != nullptr, InternalError,
                     what << ": row " << r << ", column \"" << column.name << "\" (Int64) holds another type");
          std::memcpy(out, value, sizeof *value);
          break;
        }
        case ColumnType::Float64: {
          const double* value = std::get_if<double>(&cell);
          HNAS_CHECK(value != nullptr, InternalError,
                     what << ": row " << r << ", column \"" << column.name << "\" (Float64) holds another type");
          std::memcpy(out, value, sizeof *value);
          break;
        }
        case ColumnType::String: {
          const std::string* value = std::get_if<std::string>(&cell);
          HNAS_CHECK(value != nullptr, InternalError,
                     what << ": row " << r << ", column \"" << column.name << "\" (String) holds another type");
          HNAS_CHECK(value->size() <= column.string_length, InternalError,
                     what << ": row " << r << ", column \"" << column.name << "\": value \"" << *value << "\" has "
                          << value->size() << " bytes, longer than the column's " << column.string_length
                          << " (strings are never truncated)");
          // NUL would be taken for padding on reading; bytes >= 0x80 are not ASCII.
          const auto bad = std::find_if(value->begin(), value->end(),
                                        [](char ch) { return ch == '\0' || static_cast<unsigned char>(ch) >= 0x80; });
          HNAS_CHECK(bad == value->end(), InternalError,
                     what << ": row " << r << ", column \"" << column.name << "\": value \"" << *value
                          << "\" has a NUL or non-ASCII byte at offset " << (bad - value->begin())
                          << " (String columns hold ASCII)");
          std::memcpy(out, value->data(), value->size());
          break;
        }
      }
      out += column_size(column);
    }
  }
  return buffer;
}

std::string columns_doc(const std::vector<Column>& columns) {
  std::string text;
  for (const Column& column : columns) text += column.name + ": " + column.unit_or_doc + "\n";
  return text;
}

// Restores docs only when the attribute matches the columns line by line.
void restore_docs(hid_t dataset, std::vector<Column>& columns) {
  if (!has_attribute(dataset, "columns_doc")) return;
  std::istringstream text(read_string_attribute(dataset, "columns_doc"));
  std::vector<std::string> docs;
  for (std::string line; std::getline(text, line);) docs.push_back(line);
  if (docs.size() != columns.size()) return;
  for (size_t c = 0; c < columns.size(); ++c) {
    const std::string prefix = columns[c].name + ":";
    if (docs[c].compare(0, prefix.size(), prefix) != 0) return;
    docs[c].erase(0, prefix.size());
    if (!docs[c].empty() && docs[c][0] == ' ') docs[c].erase(0, 1);
  }
  for (size_t c = 0; c < columns.size(); ++c) columns[c].unit_or_doc = docs[c];
}

H5Plist intermediate_groups() {
  H5Plist link_props(HNAS_CHECK_H5(H5Pcreate(H5P_LINK_CREATE)));
  HNAS_CHECK_H5(H5Pset_create_intermediate_group(link_props.get(), 1));
  return link_props;
}

bool deflate_available() {
  if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0) return false;
  unsigned int config = 0;
  return H5Zget_filter_info(H5Z_FILTER_DEFLATE, &config) >= 0 && (config & H5Z_FILTER_CONFIG_ENCODE_ENABLED) != 0;
}

std::string member_name(hid_t compound, unsigned index) {
  char* raw = H5Tget_member_name(compound, index);
  HNAS_CHECK(raw != nullptr, IoError,
             "cannot read the name of compound member " << index << "\n"
                                                        << take_error_stack());
  std::string name(raw);
  H5free_memory(raw);
  return name;
}

}  // namespace

void write_table(hid_t location, const std::string& name, const Table& table, const std::string& doc) {
  disable_hdf5_error_printing();
  const std::string what = describe(location) + ": table \"" + name + "\"";
  validate_columns(table.columns, what);
  const std::vector<unsigned char> buffer = pack_rows(table.columns, table.rows, what);

  const H5Type file_type = compound_type(table.columns, Storage::File);
  const H5Type memory_type = compound_type(table.columns, Storage::Memory);
  const H5Plist link_props = intermediate_groups();
  H5Plist create_props(HNAS_CHECK_H5(H5Pcreate(H5P_DATASET_CREATE)));
  const hsize_t chunk = std::clamp<hsize_t>(kMaxChunkBytes / row_size(table.columns), 1, kMaxChunkRows);
  HNAS_CHECK_H5(H5Pset_chunk(create_props.get(), 1, &chunk));
  // Level 1: the rows are small and repetitive, and most of a partly filled chunk is zeros.
  if (deflate_available()) HNAS_CHECK_H5(H5Pset_deflate(create_props.get(), 1));
  const hsize_t size = table.rows.size();
  const hsize_t unlimited = H5S_UNLIMITED;
  H5Space space(HNAS_CHECK_H5(H5Screate_simple(1, &size, &unlimited)));
  const hid_t id = H5Dcreate2(location, name.c_str(), file_type.get(), space.get(), link_props.get(),
                              create_props.get(), H5P_DEFAULT);
  if (id < 0) throw_with_error_stack<IoError>(what + ": cannot create the dataset");
  H5Dataset dataset(id);
  if (size > 0 && H5Dwrite(dataset.get(), memory_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()) < 0) {
    throw_with_error_stack<IoError>(what + ": cannot write " + std::to_string(size) + " rows");
  }
  write_string_attribute(dataset.get(), "doc", doc);
  write_string_attribute(dataset.get(), "columns_doc", columns_doc(table.columns));
}

Table read_table(hid_t location, const std::string& name) {
  disable_hdf5_error_printing();
  const H5Dataset dataset = open_dataset(location, name);
  const std::string where = describe(dataset.get());
  const H5Type file_type(HNAS_CHECK_H5(H5Dget_type(dataset.get())));
  const H5T_class_t cls = H5Tget_class(file_type.get());
  HNAS_CHECK(cls == H5T_COMPOUND, InputError,
             where << " is not a table: it stores " << class_name(cls) << " values, not compound records");
  const std::vector<hsize_t> shape = dataset_shape(dataset.get());
  HNAS_CHECK(shape.size() == 1, InputError,
             where << " is not a table: it has " << shape.size() << " dimensions, not 1");

  Table table;
  std::vector<H5Type> member_types;  // memory types, same order as the columns
  const int num_members = HNAS_CHECK_H5(H5Tget_nmembers(file_type.get()));
  for (unsigned m = 0; m < static_cast<unsigned>(num_members); ++m) {
    Column column;
    column.name = member_name(file_type.get(), m);
    const H5Type member(HNAS_CHECK_H5(H5Tget_member_type(file_type.get(), m)));
    const H5T_class_t member_class = H5Tget_class(member.get());
    if (member_class == H5T_INTEGER) {
      column.type = ColumnType::Int64;
      member_types.emplace_back(HNAS_CHECK_H5(H5Tcopy(H5T_NATIVE_INT64)));
    } else if (member_class == H5T_FLOAT) {
      column.type = ColumnType::Float64;
      member_types.emplace_back(HNAS_CHECK_H5(H5Tcopy(H5T_NATIVE_DOUBLE)));
    } else if (member_class == H5T_STRING && HNAS_CHECK_H5(H5Tis_variable_str(member.get())) == 0) {
      column.type = ColumnType::String;
      column.string_length = H5Tget_size(member.get());
      // Same character set as stored: HDF5 does not convert between ASCII and UTF-8.
      member_types.push_back(fixed_string_type(column.string_length, H5Tget_cset(member.get())));
    } else {
      throw InputError(where + ": column \"" + column.name + "\" has an unsupported type (" +
                       (member_class == H5T_STRING ? "variable-length string" : class_name(member_class)) +
                       "); tables hold integers, floating-point numbers and fixed-length strings");
    }
    table.columns.push_back(std::move(column));
  }
  restore_docs(dataset.get(), table.columns);

  const size_t stride = row_size(table.columns);
  const H5Type memory_type(HNAS_CHECK_H5(H5Tcreate(H5T_COMPOUND, std::max<size_t>(stride, 1))));
  size_t offset = 0;
  for (size_t c = 0; c < table.columns.size(); ++c) {
    HNAS_CHECK_H5(H5Tinsert(memory_type.get(), table.columns[c].name.c_str(), offset, member_types[c].get()));
    offset += column_size(table.columns[c]);
  }
  const size_t num_rows = shape[0];
  std::vector<unsigned char> buffer(stride * num_rows);
  if (num_rows > 0 && stride > 0 &&
      H5Dread(dataset.get(), memory_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()) < 0) {
    throw_with_error_stack<InputError>(where + ": cannot read the table's " + std::to_string(num_rows) + " rows");
  }

  table.rows.resize(num_rows);
  for (size_t r = 0; r < num_rows; ++r) {
    const unsigned char* in = buffer.data() + r * stride;
    std::vector<Cell>& row = table.rows[r];
    row.reserve(table.columns.size());
    for (const Column& column : table.columns) {
      switch (column.type) {
        case ColumnType::Int64: {
          int64_t value = 0;
          std::memcpy(&value, in, sizeof value);
          row.emplace_back(value);
          break;
        }
        case ColumnType::Float64: {
          double value = 0;
          std::memcpy(&value, in, sizeof value);
          row.emplace_back(value);
          break;
        }
        case ColumnType::String: {
          const char* text = reinterpret_cast<const char*>(in);
          row.emplace_back(std::string(text, ::strnlen(text, column.string_length)));
          break;
        }
      }
      in += column_size(column);
    }
  }
  return table;
}

void append_rows(hid_t location, const std::string& name, const Table& rows) {
  disable_hdf5_error_printing();
  const H5Dataset dataset = open_dataset(location, name);
  const std::string what = describe(dataset.get());
  validate_columns(rows.columns, what);
  const H5Type file_type(HNAS_CHECK_H5(H5Dget_type(dataset.get())));
  const H5Type expected = compound_type(rows.columns, Storage::File);
  if (HNAS_CHECK_H5(H5Tequal(file_type.get(), expected.get())) == 0) {
    std::string stored;
    if (H5Tget_class(file_type.get()) == H5T_COMPOUND) {
      const int num_members = HNAS_CHECK_H5(H5Tget_nmembers(file_type.get()));
      for (unsigned m = 0; m < static_cast<unsigned>(num_members); ++m) {
        stored += (m ? ", " : "") + member_name(file_type.get(), m);
      }
    }
    throw InternalError(what + ": rows to append have other columns than the stored table (given " +
                        describe_columns(rows.columns) + "; stored " + stored + ")");
  }
  const std::vector<unsigned char> buffer = pack_rows(rows.columns, rows.rows, what);
  const hsize_t count = rows.rows.size();
  if (count == 0) return;

  const std::vector<hsize_t> shape = dataset_shape(dataset.get());
  HNAS_CHECK(shape.size() == 1, InternalError, what << " is not a 1-D table");
  const hsize_t start = shape[0];
  const hsize_t new_size = start + count;
  if (H5Dset_extent(dataset.get(), &new_size) < 0) {
    throw_with_error_stack<IoError>(what + ": cannot extend the table to " + std::to_string(new_size) + " rows");
  }
  // The extent changed: the dataspace must be fetched again.
  H5Space file_space(HNAS_CHECK_H5(H5Dget_space(dataset.get())));
  HNAS_CHECK_H5(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr));
  H5Space memory_space(HNAS_CHECK_H5(H5Screate_simple(1, &count, nullptr)));
  const H5Type memory_type = compound_type(rows.columns, Storage::Memory);
  if (H5Dwrite(dataset.get(), memory_type.get(), memory_space.get(), file_space.get(), H5P_DEFAULT, buffer.data()) <
      0) {
    throw_with_error_stack<IoError>(what + ": cannot write " + std::to_string(count) + " appended rows");
  }
}

void write_string_dataset(hid_t location, const std::string& name, const std::string& text, const std::string& doc) {
  disable_hdf5_error_printing();
  const std::string what = describe(location) + ": string dataset \"" + name + "\"";
  // A variable-length string ends at its first NUL; refuse rather than truncate.
  HNAS_CHECK(text.find('\0') == std::string::npos, InternalError,
             what << ": text has a NUL byte at offset " << text.find('\0'));
  const H5Type type = utf8_string_type();
  const H5Plist link_props = intermediate_groups();
  H5Space scalar(HNAS_CHECK_H5(H5Screate(H5S_SCALAR)));
  const hid_t id =
      H5Dcreate2(location, name.c_str(), type.get(), scalar.get(), link_props.get(), H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) throw_with_error_stack<IoError>(what + ": cannot create the dataset");
  H5Dataset dataset(id);
  const char* data = text.c_str();
  if (H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &data) < 0) {
    throw_with_error_stack<IoError>(what + ": cannot write the text");
  }
  write_string_attribute(dataset.get(), "doc", doc);
}

std::string read_string_dataset(hid_t location, const std::string& name) {
  disable_hdf5_error_printing();
  const H5Dataset dataset = open_dataset(location, name);
  const std::string where = describe(dataset.get());
  const H5Type file_type(HNAS_CHECK_H5(H5Dget_type(dataset.get())));
  const H5T_class_t cls = H5Tget_class(file_type.get());
  HNAS_CHECK(cls == H5T_STRING, InputError, where << " is not a string dataset: it stores " << class_name(cls));
  const H5Space space(HNAS_CHECK_H5(H5Dget_space(dataset.get())));
  HNAS_CHECK(H5Sget_simple_extent_type(space.get()) == H5S_SCALAR, InputError,
             where << " is not a scalar string dataset");
  if (HNAS_CHECK_H5(H5Tis_variable_str(file_type.get())) > 0) {
    H5Type memory_type = utf8_string_type();
    HNAS_CHECK_H5(H5Tset_cset(memory_type.get(), H5Tget_cset(file_type.get())));
    char* raw = nullptr;
    if (H5Dread(dataset.get(), memory_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &raw) < 0) {
      throw_with_error_stack<InputError>(where + ": cannot read the string");
    }
    std::string text = raw ? raw : "";
    H5free_memory(raw);
    return text;
  }
  const size_t size = H5Tget_size(file_type.get());
  const H5Type memory_type = fixed_string_type(size, H5Tget_cset(file_type.get()));
  std::string text(size, '\0');
  if (H5Dread(dataset.get(), memory_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, text.data()) < 0) {
    throw_with_error_stack<InputError>(where + ": cannot read the string");
  }
  text.resize(::strnlen(text.c_str(), size));
  return text;
}

void fit_string_columns(Table& table) {
  for (size_t c = 0; c < table.columns.size(); ++c) {
    if (table.columns[c].type != ColumnType::String) continue;
    size_t width = 1;
    for (const auto& row : table.rows)
      if (c < row.size())
        if (const auto* text = std::get_if<std::string>(&row[c])) width = std::max(width, text->size());
    table.columns[c].string_length = width;
  }
}

}  // namespace hnas::io
