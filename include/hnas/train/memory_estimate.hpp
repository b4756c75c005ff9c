// SPDX-License-Identifier: Apache-2.0
// How much memory training a model takes on one rank, worked out from its genome and
// widths before any tensor exists, and how much this process may still use: so that a
// configuration that cannot fit is refused at start-up instead of ending in the allocator
// or the OOM killer hours into a job.
//
//   const auto need = train::estimate_training_memory(genome, shape, rows_per_rank / micro_batches, seq_len);
//   const int64_t available = train::available_memory_bytes();  // this node's, for all its ranks
//   if (available >= 0 && need.total > available / ranks_on_node)
//     throw ConfigError("... needs " + need.describe() + " per rank ...");
#pragma once

#include <cstdint>
#include <string>

#include "hnas/arch/genome.hpp"
#include "hnas/arch/model_shape.hpp"

namespace hnas::train {

/// Bytes one rank holds at the peak of a training step, by kind.
struct MemoryEstimate {
  int64_t parameters = 0;       ///< the weights
  int64_t gradients = 0;        ///< one per weight, plus the MPI reducer's flat copy in a team
  int64_t optimizer_state = 0;  ///< AdamW's two moments (FusedAdamW's flat buffers)
  /// What autograd keeps for the backward, the logits with the cross-entropy's saved
  /// gradient, the largest layer's backward working set and the batch itself, plus a
  /// quarter for the heap's fragmentation.
  int64_t activations = 0;
  int64_t total = 0;  ///< the sum of the four

  /// "parameters 1.2 GiB + gradients 1.2 GiB + AdamW state 2.4 GiB + activations 5.1 GiB = 9.9 GiB"
  std::string describe() const;
};

/// The memory of one training step of the model built from `genome` and `shape` on
/// `rows_per_step` rows of `seq_len` tokens: one forward and backward, then the AdamW
/// update. `rows_per_step` is what one forward of this rank takes: its share of the global
/// batch divided by the micro-batches. `team_size` > 1 (data parallelism over the MPI
/// reducer) adds the reducer's flat gradient buffer. Every tensor counts `element_bytes`
/// per element (4: the CPU float32 path); token ids count 8. `recompute` (activation
/// checkpointing, model::HybridModelOptions::recompute) keeps each sublayer's input
/// instead of its saved tensors, plus the largest sublayer's own while its backward runs.
///
/// Models the fused CPU kernels (model::Kernels::Fused on CPU float32): attention keeps
/// its packed qkv, output and a logsumexp per row, never the [B, H, T, T] scores, which
/// the reference kernels (and so CUDA) keep per attention layer: far more at long
/// sequences. It adds gradients and activations, though backward frees a layer's
/// activations as it writes that layer's gradients, and allows a quarter of the activations
/// for the fragmentation of a heap that keeps freed blocks (train::keep_freed_memory):
/// above the live peak, about the resident size a process levels off at. Not counted:
/// LibTorch's and the BLAS's code and workspaces, per-thread kernel scratch (a few rows'
/// worth), the data set and the evaluation's batches.
///
/// Pure arithmetic: callable from any rank or thread. Throws ConfigError for a shape that
/// ModelShape::validate rejects, an empty genome, or rows_per_step, seq_len,
/// element_bytes or team_size below 1.
MemoryEstimate estimate_training_memory(const arch::Genome& genome, const arch::ModelShape& shape,
                                        int64_t rows_per_step, int64_t seq_len, int element_bytes = 4,
                                        int team_size = 1, bool recompute = false);

/// Bytes this process may still allocate: the least of /proc/meminfo's MemAvailable and,
/// for its memory cgroup and each ancestor with a limit (cgroup v2 memory.max, v1
/// memory.limit_in_bytes), the limit minus the usage (less the inactive page cache, which
/// the kernel reclaims first). -1 when none of these can be read: skip the check then.
///
/// Rank-local, and the same figure for every rank of the node (they share the machine
/// and, under Slurm or a container, usually one cgroup): divide it by the ranks on the
/// node (Communicator::split_node_local().size()) before comparing it with one rank's
/// estimate, and call it at start-up, before the ranks allocate their models.
int64_t available_memory_bytes();

/// "13.7 MiB", "1.2 GiB", "512 B": binary units, one decimal.
std::string format_bytes(int64_t bytes);

}  // namespace hnas::train
