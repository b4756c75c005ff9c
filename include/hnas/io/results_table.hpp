// SPDX-License-Identifier: Apache-2.0
// Column-typed tables stored as 1-D compound HDF5 datasets (h5py gives a NumPy structured
// array, so pandas.DataFrame(f["/x/y"][()]) has typed columns), string datasets, and
// crash-safe whole-file replacement for the results file. Rank-local throughout: only
// the writing rank (rank 0 for results.h5) calls these.
#pragma once

#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

namespace hnas::io {

/// Storage type of one table column.
enum class ColumnType {
  Int64,    ///< stored as H5T_STD_I64LE
  Float64,  ///< stored as H5T_IEEE_F64LE
  String,   ///< fixed-length, NUL-padded ASCII of Column::string_length bytes
};

/// One column of a Table. Field names are used verbatim as compound member names.
struct Column {
  std::string name;
  ColumnType type = ColumnType::Int64;
  size_t string_length = 0;  ///< String only: bytes per value, no terminator (a value may use all of them)
  std::string unit_or_doc;   ///< one line; stored in the table's `columns_doc` attribute
};

/// One value; the alternative must match the column type (int64_t, double, std::string).
using Cell = std::variant<int64_t, double, std::string>;

/// Rows of cells in column order.
struct Table {
  std::vector<Column> columns;
  std::vector<std::vector<Cell>> rows;
};

/// Sets every String column's string_length to its longest value (at least 1), so that
/// rows can be added first and the widths fitted before write_table.
void fit_string_columns(Table& table);

/// Creates dataset `name` (absolute or relative to `location`; missing intermediate groups
/// are created) holding `table` as a packed 1-D compound with one member per column, in
/// column order. The dataset is chunked (at most 1,024 rows per chunk), gzip level 1 when
/// the filter is available, and has an unlimited maximum extent so append_rows can grow it.
/// Attributes: `doc` = `doc`, and `columns_doc` with one "name: unit_or_doc" line per column.
/// Zero rows give an empty dataset with the full column layout. Rank-local.
/// Throws InternalError (a caller bug) when a column is malformed (empty or duplicate name,
/// a String column of length 0, a doc with a newline), a row has the wrong number of cells
/// or a cell of the wrong type, or a string is longer than its column or not 7-bit ASCII
/// without NUL bytes; the message names the column and row. Nothing is truncated silently.
/// Throws IoError with the HDF5 error stack when HDF5 fails (e.g. `name` already exists).
void write_table(hid_t location, const std::string& name, const Table& table, const std::string& doc);

/// Reads any 1-D compound dataset whose members are integers (converted to int64; values
/// beyond its range saturate),
/// floating-point numbers (converted to double) or fixed-length strings (trailing NUL
/// padding removed), e.g. to resume from a results file. Columns take the member names in
/// order; unit_or_doc is restored from a matching `columns_doc` attribute when present.
/// Rank-local. Throws InputError naming "file:/path" when the dataset is missing, is not a
/// 1-D compound, has a member of another type (variable-length string, enum/bool, array,
/// nested compound, ...), or cannot be read.
Table read_table(hid_t location, const std::string& name);

/// Appends `rows.rows` to a table created by write_table. `rows.columns` must describe the
/// same columns (names, types and string lengths; docs are ignored). Rank-local.
/// Throws InputError when the dataset is missing, InternalError when the columns differ or
/// a row is invalid (as for write_table, rows are counted from 0 within `rows`), IoError
/// when HDF5 fails (e.g. the dataset is not extendible).
void append_rows(hid_t location, const std::string& name, const Table& rows);

/// Creates a scalar variable-length UTF-8 string dataset `name` (intermediate groups
/// created) holding `text`; h5py reads it with `f[name].asstr()[()]`. Long text (the
/// effective config, the environment) belongs here rather than in attributes. Rank-local.
/// Throws IoError with the HDF5 error stack on failure (e.g. `name` already exists).
/// `doc` (one line) goes to the dataset's `doc` attribute.
void write_string_dataset(hid_t location, const std::string& name, const std::string& text, const std::string& doc);

/// Reads a scalar string dataset, variable- or fixed-length (NUL padding removed).
/// Rank-local. Throws InputError naming "file:/path" when it is missing, not a scalar or
/// not a string.
std::string read_string_dataset(hid_t location, const std::string& name);

/// Replaces the HDF5 file `path` as a whole so that a crash (kill -9, power loss) at any
/// moment leaves either the old complete file or the new complete one:
///   1. creates the temporary `<path>.tmp.<host>.<pid>.<n>` next to `path` (unique to this
///      process and call, so two jobs or threads writing the same target never take each
///      other's temporary; those of killed writers on this host are removed first);
///   2. builds the file in memory (HDF5 core driver; default, earliest format so older
///      HDF5 readers work) and calls `fill(file)`; objects `fill` leaves open are closed
///      with the file. Peak memory is about twice the file's size;
///   3. writes the bytes to the temporary, fsync(2)s and closes it, rename(2)s it over
///      `path` and fsyncs the directory so the rename itself is durable.
/// Readers that have the old file open keep reading the old data (rename replaces the
/// directory entry, not the inode), and HDF5's file lock on the old inode does not matter.
/// Rank-local: call it from the one writing rank.
/// On any exception (from `fill` or below) the temporary is removed, `path` is untouched and
/// the exception propagates. A full disk, an exceeded quota or file size limit (ENOSPC,
/// EDQUOT, EFBIG) throws IoError whose first line is
///   "no space left on device (or quota exceeded) writing <tmp>; the previous <path> is
///    intact; free space or move the run directory"
/// Other file errors are IoError naming the temporary and strerror. If only the final
/// directory fsync fails, `path` already holds the new file but the rename may not survive
/// a power loss; that is reported as an IoError too (EINVAL, from file systems that cannot
/// sync directories, is ignored).
///   write_file_atomically(run_dir + "/results.h5", [&](hid_t file) {
///     write_table(file, "/search/candidates", table, "one row per evaluated candidate");
///   });
void write_file_atomically(const std::string& path, const std::function<void(hid_t file)>& fill);

/// write_file_atomically without the in-memory image, for files too large to hold twice
/// (checkpoints): HDF5 writes the temporary directly, which is then flushed, fsync'ed and
/// renamed over `path`. The same guarantees: a crash leaves the old file or the new one,
/// and a failure removes the temporary and leaves `path` untouched. Rank-local.
void write_large_file_atomically(const std::string& path, const std::function<void(hid_t file)>& fill);

/// write_file_atomically for a file that several stages share: the new file holds every
/// object of the existing `path` (copied as it is, attributes included) except those named
/// in `replaced` ("/aggregate", or a nested one such as "/pretrain/winner"), and then
/// whatever `fill` writes; so a stage rewrites its own groups and leaves the others'
/// intact. A missing `path` starts empty.
/// Rank-local, with write_file_atomically's guarantees. Throws InputError when the existing
/// file cannot be read as HDF5, IoError when a copy fails.
///   update_file_atomically(results, {"/aggregate"}, [&](hid_t file) { ... });
void update_file_atomically(const std::string& path, const std::vector<std::string>& replaced,
                            const std::function<void(hid_t file)>& fill);

/// "<path>.tmp.<host>.<pid>.<n>": a temporary name for `path` that no other process, and no
/// other call in this one, can take, in the target's directory so that rename(2) is atomic.
/// Rank-local.
std::string temporary_name(const std::string& path);

}  // namespace hnas::io
