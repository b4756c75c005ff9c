// SPDX-License-Identifier: Apache-2.0
#include "hnas/io/h5.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "h5_open_impl.hpp"
#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/log.hpp"

namespace hnas::io {
namespace {

herr_t append_error_record(unsigned n, const H5E_error2_t* err, void* client) {
  auto& out = *static_cast<std::string*>(client);
  char major[128] = "";
  char minor[128] = "";
  H5Eget_msg(err->maj_num, nullptr, major, sizeof major);
  H5Eget_msg(err->min_num, nullptr, minor, sizeof minor);
  char line[64];
  std::snprintf(line, sizeof line, "  #%03u: ", n);
  out += line;
  out += err->file_name ? err->file_name : "?";
  out += ":" + std::to_string(err->line) + " ";
  out += err->func_name ? err->func_name : "?";
  out += "(): ";
  out += err->desc ? err->desc : "";
  out += " [";
  out += major;
  out += " / ";
  out += minor;
  out += "]\n";
  return 0;
}

// A word that starts with "lock" (HDF5 says "unable to lock file", "file locking"); the
// "block" and "superblock" of unrelated records must not send users after file locks.
bool mentions_locking(const std::string& text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (size_t pos = lower.find("lock"); pos != std::string::npos; pos = lower.find("lock", pos + 1)) {
    if (pos == 0 || !std::isalpha(static_cast<unsigned char>(lower[pos - 1]))) return true;
  }
  return false;
}

// HDF5's sec2 driver puts strerror(errno) of a failed write into the stack.
bool mentions_full_disk(const std::string& text) {
  for (int error : {ENOSPC, EDQUOT, EFBIG}) {
    if (text.find(std::strerror(error)) != std::string::npos) return true;
  }
  return false;
}

// The error text is taken before anything else touches HDF5: most API calls clear the
// stack on entry, so building the context first (describe(), H5Fget_name) would lose it.
template <typename ErrorType>
[[noreturn]] void fail_with_stack(const std::string& context) {
  std::string stack = take_error_stack();
  std::string message = context;
  if (mentions_locking(stack)) message += std::string("\n  ") + detail::kLockHint;
  if (mentions_full_disk(stack)) {
    message += "\n  no space left on device (or quota or file size limit exceeded): free space or write elsewhere";
  }
  if (!stack.empty()) message += "\nHDF5 error stack:\n" + stack;
  throw ErrorType(message);
}

template <typename ErrorType>
hid_t checked(hid_t id, const std::string& context) {
  if (id < 0) fail_with_stack<ErrorType>(context);
  return id;
}

template <typename T>
hid_t native_type();
template <>
hid_t native_type<uint8_t>() {
  return H5T_NATIVE_UINT8;
}
template <>
hid_t native_type<uint16_t>() {
  return H5T_NATIVE_UINT16;
}
template <>
hid_t native_type<int32_t>() {
  return H5T_NATIVE_INT32;
}
template <>
hid_t native_type<uint32_t>() {
  return H5T_NATIVE_UINT32;
}
template <>
hid_t native_type<int64_t>() {
  return H5T_NATIVE_INT64;
}
template <>
hid_t native_type<float>() {
  return H5T_NATIVE_FLOAT;
}
template <>
hid_t native_type<double>() {
  return H5T_NATIVE_DOUBLE;
}

H5Type utf8_string_type() {
  H5Type type(HNAS_CHECK_H5(H5Tcopy(H5T_C_S1)));
  HNAS_CHECK_H5(H5Tset_size(type.get(), H5T_VARIABLE));
  HNAS_CHECK_H5(H5Tset_cset(type.get(), H5T_CSET_UTF8));
  return type;
}

// Opens attribute `name` of `object` and checks its type class; InputError when missing.
H5Attribute open_attribute(hid_t object, const std::string& name, H5T_class_t expected_a, H5T_class_t expected_b,
                           const char* kind) {
  disable_hdf5_error_printing();
  const std::string where = describe(object);
  const htri_t exists = H5Aexists(object, name.c_str());
  if (exists < 0) fail_with_stack<InputError>(where + ": cannot look up attribute \"" + name + "\"");
  HNAS_CHECK(exists > 0, InputError, where << " has no attribute \"" << name << "\"");
  H5Attribute attr(checked<InputError>(H5Aopen(object, name.c_str(), H5P_DEFAULT),
                                       where + ": cannot open attribute \"" + name + "\""));
  H5Type type(HNAS_CHECK_H5(H5Aget_type(attr.get())));
  const H5T_class_t cls = H5Tget_class(type.get());
  HNAS_CHECK(cls == expected_a || cls == expected_b, InputError,
             where << ": attribute \"" << name << "\" is not " << kind);
  H5Space space(HNAS_CHECK_H5(H5Aget_space(attr.get())));
  HNAS_CHECK(H5Sget_simple_extent_npoints(space.get()) == 1, InputError,
             where << ": attribute \"" << name << "\" is not a scalar");
  return attr;
}

H5Attribute replace_attribute(hid_t object, const std::string& name, hid_t type) {
  disable_hdf5_error_printing();
  const std::string where = describe(object);
  if (HNAS_CHECK_H5(H5Aexists(object, name.c_str())) > 0) {
    HNAS_CHECK_H5(H5Adelete(object, name.c_str()));
  }
  H5Space scalar(HNAS_CHECK_H5(H5Screate(H5S_SCALAR)));
  return H5Attribute(checked<IoError>(H5Acreate2(object, name.c_str(), type, scalar.get(), H5P_DEFAULT, H5P_DEFAULT),
                                      where + ": cannot create attribute \"" + name + "\""));
}

}  // namespace

namespace detail {

const char* const kLockHint =
    "the file could not be locked: another process may have it open for writing, or the file system does not "
    "support locks; in the latter case set HDF5_USE_FILE_LOCKING=FALSE in the environment and retry";

OpenAttempt try_open_read_only(const std::string& path) {
  disable_hdf5_error_printing();
  OpenAttempt attempt;
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    attempt.problem = OpenProblem::Missing;
    attempt.detail = std::strerror(errno);
    return attempt;
  }
  if (S_ISDIR(info.st_mode)) {
    attempt.problem = OpenProblem::Directory;
    return attempt;
  }
  if (!S_ISREG(info.st_mode)) {
    attempt.problem = OpenProblem::NotRegular;
    return attempt;
  }
  // Asked first because HDF5 reports a permission problem as "unable to open file".
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    attempt.problem = OpenProblem::Unreadable;
    attempt.detail = std::strerror(errno);
    return attempt;
  }
  ::close(fd);
  // H5Fis_hdf5 gives a clear answer for a text or .bin file where H5Fopen's stack would
  // only say "file signature not found".
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    attempt.problem = OpenProblem::NotHdf5;
    return attempt;
  }
  attempt.file = H5File(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!attempt.file) {
    attempt.detail = take_error_stack();
    attempt.problem = mentions_locking(attempt.detail) ? OpenProblem::Locked : OpenProblem::Damaged;
  }
  return attempt;
}

void report_close_failure(hid_t id) noexcept {
  try {
    log::warn("closing HDF5 object " + std::to_string(id) + " failed\n" + take_error_stack());
  } catch (...) {
    // Logging must not turn a failed close inside a destructor into std::terminate.
  }
}

void throw_h5_failure(const char* expr, const char* file, int line) {
  std::ostringstream context;
  context << "HDF5 call failed: " << expr << " (" << file << ":" << line << ")";
  fail_with_stack<IoError>(context.str());
}

}  // namespace detail

template <typename ErrorType>
void throw_with_error_stack(const std::string& context) {
  fail_with_stack<ErrorType>(context);
}
template void throw_with_error_stack<IoError>(const std::string&);
template void throw_with_error_stack<InputError>(const std::string&);

void disable_hdf5_error_printing() {
  // Per thread: a thread-safe HDF5 keeps one error stack (and its printing) per thread.
  thread_local const bool disabled = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)disabled;
}

std::string take_error_stack() {
  std::string text;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, append_error_record, &text);
  H5Eclear2(H5E_DEFAULT);
  return text;
}

std::string describe(hid_t object) {
  std::string text;
  const ssize_t file_len = H5Fget_name(object, nullptr, 0);
  if (file_len > 0) {
    text.resize(static_cast<size_t>(file_len) + 1);
    H5Fget_name(object, text.data(), text.size());
    text.resize(static_cast<size_t>(file_len));
  }
  if (H5Iget_type(object) != H5I_FILE) {
    const ssize_t name_len = H5Iget_name(object, nullptr, 0);
    if (name_len > 0) {
      std::string name(static_cast<size_t>(name_len) + 1, '\0');
      H5Iget_name(object, name.data(), name.size());
      name.resize(static_cast<size_t>(name_len));
      text += ":" + name;
    }
  }
  H5Eclear2(H5E_DEFAULT);
  return text.empty() ? "<HDF5 object " + std::to_string(object) + ">" : text;
}

H5File open_file_read_only(const std::string& path) {
  using detail::OpenProblem;
  detail::OpenAttempt attempt = detail::try_open_read_only(path);
  switch (attempt.problem) {
    case OpenProblem::None:
      return std::move(attempt.file);
    case OpenProblem::Missing:
      throw InputError("cannot open HDF5 file " + path + ": " + attempt.detail);
    case OpenProblem::Directory:
      throw InputError(path + " is a directory, not an HDF5 file");
    case OpenProblem::NotRegular:
      throw InputError(path + " is not a regular file");
    case OpenProblem::Unreadable:
      throw InputError("cannot read " + path + " (" + attempt.detail + ")");
    case OpenProblem::NotHdf5:
      throw InputError(path + " is not an HDF5 file (no HDF5 signature found)");
    case OpenProblem::Damaged:
      throw InputError(path + " is damaged (truncated or not an HDF5 file)\nHDF5 error stack:\n" + attempt.detail);
    case OpenProblem::Locked:
      throw InputError("cannot open HDF5 file " + path + " read-only\n  " + detail::kLockHint +
                       "\nHDF5 error stack:\n" + attempt.detail);
  }
  throw InternalError("open_file_read_only: unknown problem");
}

H5File create_file(const std::string& path, hid_t file_access) {
  disable_hdf5_error_printing();
  return H5File(checked<IoError>(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, file_access),
                                 "cannot create HDF5 file " + path));
}

H5Dataset open_dataset(hid_t location, const std::string& name) {
  disable_hdf5_error_printing();
  const std::string where = describe(location);
  // H5Dopen2 on a missing path fails with a five-record stack; walking the links first
  // gives the user one line naming the missing part.
  for (size_t pos = name.find('/', 1);; pos = name.find('/', pos + 1)) {
    const std::string prefix = name.substr(0, pos);
    if (!prefix.empty() && prefix != "/") {
      const htri_t exists = H5Lexists(location, prefix.c_str(), H5P_DEFAULT);
      H5Eclear2(H5E_DEFAULT);
      HNAS_CHECK(
          exists > 0, InputError,
          where << ": no dataset \"" << name << "\"" << (prefix == name ? "" : " (\"" + prefix + "\" does not exist)"));
    }
    if (pos == std::string::npos) break;
  }
  return H5Dataset(checked<InputError>(H5Dopen2(location, name.c_str(), H5P_DEFAULT),
                                       where + ": \"" + name + "\" is not a readable dataset"));
}

std::vector<hsize_t> dataset_shape(hid_t dataset) {
  H5Space space(HNAS_CHECK_H5(H5Dget_space(dataset)));
  const int rank = HNAS_CHECK_H5(H5Sget_simple_extent_ndims(space.get()));
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0) HNAS_CHECK_H5(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr));
  return dims;
}

bool is_integer_dataset(hid_t dataset) {
  H5Type type(HNAS_CHECK_H5(H5Dget_type(dataset)));
  return H5Tget_class(type.get()) == H5T_INTEGER;
}

std::vector<int32_t> read_int32_slice(hid_t dataset, hsize_t offset, hsize_t count) {
  disable_hdf5_error_printing();
  const std::string where = describe(dataset);
  const std::vector<hsize_t> shape = dataset_shape(dataset);
  HNAS_CHECK(shape.size() == 1, InputError, where << " has " << shape.size() << " dimensions; expected a 1-D dataset");
  {
    H5Type type(HNAS_CHECK_H5(H5Dget_type(dataset)));
    const H5T_class_t cls = H5Tget_class(type.get());
    HNAS_CHECK(cls != H5T_FLOAT, InputError,
               where << " stores floating-point values; integer values (token ids) are required");
    HNAS_CHECK(cls == H5T_INTEGER, InputError,
               where << " does not store integers; integer values (token ids) are required");
  }
  HNAS_CHECK(offset <= shape[0] && count <= shape[0] - offset, InputError,
             where << ": range [" << offset << ", " << offset + count << ") exceeds its length " << shape[0]);
  std::vector<int32_t> values(count);
  if (count == 0) return values;
  H5Space file_space(HNAS_CHECK_H5(H5Dget_space(dataset)));
  HNAS_CHECK_H5(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &offset, nullptr, &count, nullptr));
  H5Space memory_space(HNAS_CHECK_H5(H5Screate_simple(1, &count, nullptr)));
  if (H5Dread(dataset, H5T_NATIVE_INT32, memory_space.get(), file_space.get(), H5P_DEFAULT, values.data()) < 0) {
    fail_with_stack<InputError>(where + ": cannot read elements [" + std::to_string(offset) + ", " +
                                std::to_string(offset + count) + ")");
  }
  return values;
}

template <typename T>
H5Dataset write_dataset_1d(hid_t location, const std::string& name, const std::vector<T>& values,
                           const DatasetOptions& options) {
  disable_hdf5_error_printing();
  HNAS_CHECK(options.deflate_level == 0 || options.chunk > 0, ConfigError,
             "dataset " << name << ": compression needs a chunked layout (chunk > 0)");
  const std::string where = describe(location);
  const std::string context = where + ": cannot write dataset \"" + name + "\"";
  H5Plist link_props(HNAS_CHECK_H5(H5Pcreate(H5P_LINK_CREATE)));
  HNAS_CHECK_H5(H5Pset_create_intermediate_group(link_props.get(), 1));
  H5Plist create_props(HNAS_CHECK_H5(H5Pcreate(H5P_DATASET_CREATE)));
  const hsize_t size = values.size();
  // Chunked datasets get an unlimited extent so later writers can append to them.
  const hsize_t unlimited = H5S_UNLIMITED;
  if (options.chunk > 0) {
    HNAS_CHECK_H5(H5Pset_chunk(create_props.get(), 1, &options.chunk));
    if (options.deflate_level > 0) {
      HNAS_CHECK_H5(H5Pset_deflate(create_props.get(), static_cast<unsigned>(options.deflate_level)));
    }
  }
  H5Space space(HNAS_CHECK_H5(H5Screate_simple(1, &size, options.chunk > 0 ? &unlimited : nullptr)));
  H5Dataset dataset(checked<IoError>(H5Dcreate2(location, name.c_str(), native_type<T>(), space.get(), link_props.get(),
                                                create_props.get(), H5P_DEFAULT),
                                     context));
  if (size > 0 && H5Dwrite(dataset.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0) {
    fail_with_stack<IoError>(context);
  }
  return dataset;
}

template H5Dataset write_dataset_1d(hid_t, const std::string&, const std::vector<uint8_t>&, const DatasetOptions&);
template H5Dataset write_dataset_1d(hid_t, const std::string&, const std::vector<uint16_t>&, const DatasetOptions&);
template H5Dataset write_dataset_1d(hid_t, const std::string&, const std::vector<int32_t>&, const DatasetOptions&);
template H5Dataset write_dataset_1d(hid_t, const std::string&, const std::vector<uint32_t>&, const DatasetOptions&);
template H5Dataset write_dataset_1d(hid_t, const std::string&, const std::vector<int64_t>&, const DatasetOptions&);
template H5Dataset write_dataset_1d(hid_t, const std::string&, const std::vector<float>&, const DatasetOptions&);
template H5Dataset write_dataset_1d(hid_t, const std::string&, const std::vector<double>&, const DatasetOptions&);

void write_string_attribute(hid_t object, const std::string& name, const std::string& value) {
  H5Type type = utf8_string_type();
  H5Attribute attr = replace_attribute(object, name, type.get());
  const char* text = value.c_str();
  HNAS_CHECK_H5(H5Awrite(attr.get(), type.get(), &text));
}

void write_int_attribute(hid_t object, const std::string& name, int64_t value) {
  H5Attribute attr = replace_attribute(object, name, H5T_NATIVE_INT64);
  HNAS_CHECK_H5(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value));
}

void write_double_attribute(hid_t object, const std::string& name, double value) {
  H5Attribute attr = replace_attribute(object, name, H5T_NATIVE_DOUBLE);
  HNAS_CHECK_H5(H5Awrite(attr.get(), H5T_NATIVE_DOUBLE, &value));
}

bool has_attribute(hid_t object, const std::string& name) {
  disable_hdf5_error_printing();
  return HNAS_CHECK_H5(H5Aexists(object, name.c_str())) > 0;
}

std::string read_string_attribute(hid_t object, const std::string& name) {
  H5Attribute attr = open_attribute(object, name, H5T_STRING, H5T_STRING, "a string");
  H5Type file_type(HNAS_CHECK_H5(H5Aget_type(attr.get())));
  if (HNAS_CHECK_H5(H5Tis_variable_str(file_type.get())) > 0) {
    H5Type memory_type = utf8_string_type();
    HNAS_CHECK_H5(H5Tset_cset(memory_type.get(), H5Tget_cset(file_type.get())));
    char* text = nullptr;
    HNAS_CHECK_H5(H5Aread(attr.get(), memory_type.get(), &text));
    std::string value = text ? text : "";
    H5free_memory(text);
    return value;
  }
  const size_t size = H5Tget_size(file_type.get());
  H5Type memory_type(HNAS_CHECK_H5(H5Tcopy(H5T_C_S1)));
  HNAS_CHECK_H5(H5Tset_size(memory_type.get(), size));
  std::string value(size, '\0');
  HNAS_CHECK_H5(H5Aread(attr.get(), memory_type.get(), value.data()));
  value.resize(std::strlen(value.c_str()));  // fixed-length strings are NUL-padded
  return value;
}

int64_t read_int_attribute(hid_t object, const std::string& name) {
  H5Attribute attr = open_attribute(object, name, H5T_INTEGER, H5T_INTEGER, "an integer");
  int64_t value = 0;
  HNAS_CHECK_H5(H5Aread(attr.get(), H5T_NATIVE_INT64, &value));
  return value;
}

double read_double_attribute(hid_t object, const std::string& name) {
  H5Attribute attr = open_attribute(object, name, H5T_FLOAT, H5T_INTEGER, "a number");
  double value = 0;
  HNAS_CHECK_H5(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &value));
  return value;
}

std::vector<std::string> link_names(hid_t group) {
  H5G_info_t info{};
  HNAS_CHECK_H5(H5Gget_info(group, &info));
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t length =
        HNAS_CHECK_H5(H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT));
    std::string name(static_cast<size_t>(length), '\0');
    HNAS_CHECK_H5(
        H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT));
    names.push_back(name);
  }
  return names;
}

}  // namespace hnas::io
