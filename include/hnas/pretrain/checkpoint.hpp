// SPDX-License-Identifier: Apache-2.0
// Pre-training checkpoints: one HDF5 file per checkpoint under DIR/checkpoints/<model>/,
// written to a temporary name, flushed, fsync'ed and renamed, then named by the `latest`
// pointer (itself replaced atomically); the last K are kept. A kill -9 at any moment
// leaves the previous checkpoint valid, and a damaged one is detected by its checksums
// and skipped for the one before it.
//
// Layout of step_<N>.h5 (every tensor C-contiguous in its own dtype; bfloat16 stored as
// its uint16 bit pattern, attribute dtype = "bfloat16"):
//   /weights/<module path>            e.g. /weights/layers.0.qkv.weight; attributes dtype,
//                                      shape (text "2048,6144") and fnv1a64 (checksum)
//   /optimizer/exp_avg/<module path>  AdamW first moments, same attributes
//   /optimizer/exp_avg_sq/<path>      second moments; attribute steps on each = its count
//   /state                            attributes: step, tokens, cursor, world_size,
//                                      wall_seconds, format; identity.<key> = the values a
//                                      resume must match (model, schedule length, data)
//   /model                            attributes arch, d_model, heads, kv_heads, head_dim,
//                                      mlp_hidden, vocab_size, rope_theta, norm_eps,
//                                      tie_embeddings: enough to rebuild the model
//   /series/train, /series/validation the loss curves so far (compound tables)
// tools/hnas_checkpoint.py reads it into PyTorch.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hnas/arch/model_shape.hpp"
#include "hnas/io/results_table.hpp"

namespace hnas::pretrain {

struct NamedTensor {
  std::string name;   ///< module path
  at::Tensor tensor;  ///< a CPU tensor
  int64_t steps = 0;  ///< optimizer moments: the parameter's AdamW step count
};

/// One row of the training series.
struct TrainPoint {
  int64_t step = 0;  ///< optimizer steps done after it (1-based)
  int64_t tokens = 0;
  double loss = 0;
  double lr = 0;
  double grad_norm = 0;
  double tokens_per_second = 0;
  double mfu = 0;
  double seconds = 0;  ///< training wall time so far
};

struct ValidationPoint {
  int64_t step = 0;
  int64_t tokens = 0;
  double loss = 0;
};

/// Everything a resume needs.
struct Checkpoint {
  int64_t step = 0;    ///< optimizer steps done
  int64_t tokens = 0;  ///< training tokens seen
  int64_t cursor = 0;  ///< training windows consumed (global: any world size continues from it)
  int64_t world_size = 1;
  double wall_seconds = 0;
  std::string arch;        ///< the model's architecture (letters)
  arch::ModelShape shape;  ///< its widths (a language model)
  /// Key -> value that must be equal to resume ("model.arch", "pretrain.tokens", "data", ...).
  std::map<std::string, std::string> identity;
  std::vector<NamedTensor> weights;
  std::vector<NamedTensor> exp_avg, exp_avg_sq;
  std::vector<TrainPoint> train;
  std::vector<ValidationPoint> validation;
};

/// Writes `checkpoint` as DIR/step_<step>.h5, points DIR/latest at it and deletes all but
/// the newest `keep` checkpoints. Rank-local (rank 0). Throws IoError (the previous
/// checkpoints intact) when the file cannot be written.
void write_checkpoint(const std::string& dir, const Checkpoint& checkpoint, int64_t keep);

/// The newest valid checkpoint of DIR, or nullopt when there is none. Tries the one
/// `latest` names, then the others newest first, logging a warning for each one that is
/// damaged (truncated, not HDF5, a tensor failing its checksum). Throws InputError when
/// checkpoints exist but none is valid (starting over would overwrite them). Rank-local.
std::optional<Checkpoint> load_latest_checkpoint(const std::string& dir);

/// Reads one checkpoint file, verifying every checksum. Throws InputError naming the file
/// and the first defect.
Checkpoint read_checkpoint(const std::string& path);

/// The training and validation series as the tables stored in a checkpoint's /series and
/// in /pretrain/<model> of results.h5. Rank-local.
io::Table train_series_table(const std::vector<TrainPoint>& points);
io::Table validation_series_table(const std::vector<ValidationPoint>& points);

/// The 64-bit FNV-1a hash (over 8-byte words) of a tensor's bytes, as 16 hex digits.
std::string tensor_checksum(const at::Tensor& tensor);

}  // namespace hnas::pretrain
