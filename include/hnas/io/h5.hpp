// SPDX-License-Identifier: Apache-2.0
// A thin RAII layer over the serial HDF5 C API: owning handles, one checked-call macro
// that carries the HDF5 error stack into the exception, and the few helpers the results
// file, checkpoints and token datasets need. Rank-local throughout (serial HDF5 only).
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace hnas::io {

namespace detail {
/// Logs (never throws) that closing `id` failed; used by ~H5Handle.
void report_close_failure(hid_t id) noexcept;
/// Throws IoError "HDF5 call failed: <expr> (<file>:<line>)" plus the error stack text.
[[noreturn]] void throw_h5_failure(const char* expr, const char* file, int line);

template <typename T>
T check_h5(T value, const char* expr, const char* file, int line) {
  static_assert(std::is_signed_v<T>, "HNAS_CHECK_H5 is for calls that fail with a negative value");
  if (value < 0) throw_h5_failure(expr, file, line);
  return value;
}
}  // namespace detail

/// Switches off HDF5's automatic printing of the error stack to stderr, once per process:
/// failures are reported through exceptions instead. Every helper below calls it; call it
/// yourself before using HNAS_CHECK_H5 on raw calls that run before any helper.
void disable_hdf5_error_printing();

/// The current HDF5 error stack as text, innermost record last, one line per record
/// ("  #000: H5F.c:509 H5Fopen(): unable to open file [File accessibility / ...]"), and
/// clears it. Empty when the stack is empty. Rank-local.
std::string take_error_stack();

/// Throws ErrorType (IoError or InputError) with `context`, then the HDF5 error stack, plus a
/// hint naming HDF5_USE_FILE_LOCKING when the stack reports a lock failure ("unable to lock
/// file"; not "superblock") and one saying the disk is full when a write failed with ENOSPC,
/// EDQUOT or EFBIG. Call it right
/// after the failing call: most HDF5 calls clear the stack, so take describe() beforehand.
template <typename ErrorType>
[[noreturn]] void throw_with_error_stack(const std::string& context);

/// Evaluates an HDF5 call returning herr_t, hid_t, htri_t or ssize_t and returns its
/// result; a negative result (failure) throws IoError naming the expression and location, followed by the HDF5 error
/// stack:
///   H5Dataset d(HNAS_CHECK_H5(H5Dopen2(file.get(), "/x", H5P_DEFAULT)));
#define HNAS_CHECK_H5(expr) ::hnas::io::detail::check_h5((expr), #expr, __FILE__, __LINE__)

/// Owns one HDF5 identifier and closes it with `Close`. Non-copyable, movable; the
/// destructor never throws (a failed close is logged). Do not wrap predefined ids such as
/// H5T_NATIVE_INT32 or H5P_DEFAULT: they must never be closed.
template <herr_t (*Close)(hid_t)>
class H5Handle {
 public:
  H5Handle() noexcept = default;
  /// Takes ownership of `id` (a negative id gives an empty handle).
  explicit H5Handle(hid_t id) noexcept : id_(id) {}
  ~H5Handle() { reset(); }

  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  H5Handle(H5Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
  H5Handle& operator=(H5Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
    }
    return *this;
  }

  hid_t get() const noexcept { return id_; }
  bool valid() const noexcept { return id_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }

  /// Gives up ownership without closing.
  hid_t release() noexcept { return std::exchange(id_, H5I_INVALID_HID); }

  /// Closes now, logging (not throwing) on failure. Safe on an empty handle.
  void reset() noexcept {
    if (id_ >= 0 && Close(id_) < 0) detail::report_close_failure(id_);
    id_ = H5I_INVALID_HID;
  }

  /// Closes now and throws IoError with the error stack on failure. Use it for files being
  /// written: a failed H5Fclose means metadata may not have reached the disk.
  void close() {
    const hid_t id = std::exchange(id_, H5I_INVALID_HID);
    if (id >= 0 && Close(id) < 0) detail::throw_h5_failure("close", __FILE__, __LINE__);
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

using H5File = H5Handle<H5Fclose>;
using H5Group = H5Handle<H5Gclose>;
using H5Dataset = H5Handle<H5Dclose>;
using H5Space = H5Handle<H5Sclose>;
using H5Plist = H5Handle<H5Pclose>;
using H5Type = H5Handle<H5Tclose>;
using H5Attribute = H5Handle<H5Aclose>;

/// "file.h5:/group/name" for messages, from any open object id. Never throws.
std::string describe(hid_t object);

// ---- files -------------------------------------------------------------------------

/// Opens an existing file read-only. Rank-local. Throws InputError whose first line names
/// `path` and the defect: missing ("cannot open HDF5 file P: No such file or directory"),
/// a directory, not a regular file, unreadable ("cannot read P (Permission denied)"), not an
/// HDF5 file, or damaged ("P is damaged (truncated or not an HDF5 file)", the HDF5 stack
/// on later lines). When HDF5's file lock fails, the message names
/// HDF5_USE_FILE_LOCKING=FALSE (file systems without lock support).
/// For a results file to resume from, use open_results_file (run_directory.hpp).
H5File open_file_read_only(const std::string& path);

/// Creates `path`, truncating an existing file. `file_access` is a file-access property
/// list (H5P_DEFAULT: default driver, earliest format). Throws IoError naming `path` and
/// the HDF5 stack on failure.
H5File create_file(const std::string& path, hid_t file_access = H5P_DEFAULT);

// ---- datasets ----------------------------------------------------------------------

/// Opens dataset `name` (absolute or relative to `location`). Throws InputError naming
/// the file and dataset when it does not exist or is not a dataset.
H5Dataset open_dataset(hid_t location, const std::string& name);

/// Names of the links in `group` (a file or group id), in name order. Rank-local.
std::vector<std::string> link_names(hid_t group);

/// Current extent of each dimension of `dataset` (empty for a scalar).
std::vector<hsize_t> dataset_shape(hid_t dataset);

/// True when the dataset's stored element type is an integer type (any width, signed or not).
bool is_integer_dataset(hid_t dataset);

/// Reads elements [offset, offset + count) of a 1-D integer dataset, converted by HDF5 to
/// native int32 (values outside the int32 range are clamped by HDF5's conversion).
/// Throws InputError naming the dataset when it is not 1-D, stores floating-point or other
/// non-integer values, or the range exceeds its length.
std::vector<int32_t> read_int32_slice(hid_t dataset, hsize_t offset, hsize_t count);

/// Options for write_dataset_1d.
struct DatasetOptions {
  hsize_t chunk = 0;      ///< elements per chunk; 0 writes a contiguous dataset
  int deflate_level = 0;  ///< 1..9 enables gzip (needs chunk > 0); 0 stores uncompressed
};

/// Creates 1-D dataset `name` under `location` (missing intermediate groups are created)
/// holding `values` with their native type. T is one of uint8_t, uint16_t, int32_t,
/// uint32_t, int64_t, float, double. Throws IoError with the HDF5 stack on failure.
template <typename T>
H5Dataset write_dataset_1d(hid_t location, const std::string& name, const std::vector<T>& values,
                           const DatasetOptions& options = {});

// ---- attributes (small metadata on a file, group or dataset) -------------------------

/// Writes (or replaces) a scalar variable-length UTF-8 string attribute.
void write_string_attribute(hid_t object, const std::string& name, const std::string& value);
/// Writes (or replaces) a scalar int64 attribute.
void write_int_attribute(hid_t object, const std::string& name, int64_t value);
/// Writes (or replaces) a scalar double attribute.
void write_double_attribute(hid_t object, const std::string& name, double value);

bool has_attribute(hid_t object, const std::string& name);
/// Reads a string attribute, fixed- or variable-length (as h5py writes either).
/// Throws InputError naming the object when it is missing or not a string.
std::string read_string_attribute(hid_t object, const std::string& name);
/// Reads a scalar integer attribute (any integer storage type) as int64.
int64_t read_int_attribute(hid_t object, const std::string& name);
/// Reads a scalar numeric attribute as double.
double read_double_attribute(hid_t object, const std::string& name);

}  // namespace hnas::io
