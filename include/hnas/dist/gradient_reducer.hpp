// SPDX-License-Identifier: Apache-2.0
// Data parallelism inside a team: the ranks of a team train one model on disjoint slices
// of each global batch and combine their gradients here before the optimizer step. Two
// implementations behind one interface: MPI all-reduce on CPU tensors (always built) and
// NCCL on CUDA tensors (HNAS_WITH_NCCL). Gradients travel in one flat buffer per step,
// reduced in as few calls as the library's count limits allow, never one call per
// parameter. Host-side scalars (loss sums, stop flags, evaluation metrics) always go
// over the team's MPI communicator, and so, like every MPI wait, end in FatalError once
// they make no progress for the stall timeout (set_stall_timeout).
//
// Every method is collective over the team: all its ranks call the same methods in the
// same order with the same parameter lists (same names, shapes, order), or the job hangs.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hnas/dist/communicator.hpp"

namespace hnas::dist {

/// A bucket collective in flight (GradientReducer::start_*): its tensors stay untouched,
/// and alive, until wait() returns.
class PendingBucket {
 public:
  virtual ~PendingBucket() = default;
  /// Lets the collective progress; true once it is complete.
  virtual bool test() = 0;
  /// Until it is complete (CUDA: until later work on the compute stream is ordered after
  /// it), under the stall or NCCL timeout.
  virtual void wait() = 0;
};

class GradientReducer {
 public:
  /// `team` must outlive the reducer.
  explicit GradientReducer(const Communicator& team) : team_(team) {}
  virtual ~GradientReducer() = default;

  int rank() const { return team_.rank(); }
  int size() const { return team_.size(); }

  /// Replaces each parameter's gradient by its sum over the team (a missing gradient
  /// counts as zeros and is materialised). The caller normalises the loss by the global
  /// batch, so the sum is the global gradient. Collective.
  virtual void sum_gradients(const std::vector<at::Tensor>& parameters) = 0;
  /// Copies team rank 0's values of `tensors` into every rank's. Collective.
  virtual void broadcast_from_leader(const std::vector<at::Tensor>& tensors) = 0;

  /// Non-blocking bucket collectives, for overlapping the gradient reduction with the
  /// backward pass and for optimizer-state sharding (ZeRO-1). Each starts at once and
  /// returns; every rank must start the same ones in the same order. On CUDA they run on
  /// the reducer's own stream, after the work already queued on the compute stream.
  /// `flat` is contiguous, of size() x k elements for the last two.
  ///
  /// In-place sum of `flat` over the team. Collective.
  virtual std::unique_ptr<PendingBucket> start_sum(const at::Tensor& flat) = 0;
  /// The sum of `flat` over the team, of which rank r receives part r (elements
  /// [r k, (r + 1) k)) in `shard` (k elements). Collective.
  virtual std::unique_ptr<PendingBucket> start_reduce_scatter(const at::Tensor& flat, const at::Tensor& shard) = 0;
  /// In-place all-gather: rank r contributes part r of `flat`, every rank gets all parts.
  /// Collective.
  virtual std::unique_ptr<PendingBucket> start_all_gather(const at::Tensor& flat) = 0;

  /// Host scalars, in place. Collective.
  void sum(double* values, size_t count) const { team_.all_reduce_sum(values, count); }
  int64_t max(int64_t value) const { return team_.all_reduce_max(value); }
  void broadcast_from_leader(double* values, size_t count) const { team_.broadcast(values, count * sizeof(double), 0); }

 protected:
  /// Copies the parameters' gradients, in order, into one flat buffer (zeros where a
  /// gradient is missing), reallocating `flat` with the parameters' dtype and device when
  /// its size or type does not fit.
  static void pack_gradients(const std::vector<at::Tensor>& parameters, at::Tensor& flat);
  /// The inverse: each parameter's gradient becomes its slice of `flat` (materialised if missing).
  static void unpack_gradients(const at::Tensor& flat, const std::vector<at::Tensor>& parameters);

  const Communicator& team_;
};

/// MPI all-reduce over CPU float32 tensors, non-blocking and polled: a team rank that makes
/// no progress for the stall timeout ends the wait in FatalError. Throws InternalError for
/// other tensors.
std::unique_ptr<GradientReducer> make_mpi_reducer(const Communicator& team);

/// True when this build has the NCCL implementation.
bool nccl_built();

/// The CUDA device's name ("NVIDIA H200", "NVIDIA A100-SXM4-80GB"), or "" when this build
/// has no CUDA runtime (it comes with NCCL). Rank-local.
std::string cuda_device_name(int device);

/// The CUDA device's memory in bytes, or -1 when this build has no CUDA runtime. Rank-local.
int64_t cuda_device_memory_bytes(int device);

/// NCCL over CUDA tensors on `device` (this rank's GPU; cudaSetDevice is called here).
/// Collective over `team`: team rank 0 creates the ncclUniqueId and broadcasts it over
/// MPI. NCCL errors, including asynchronous ones and a collective that makes no progress
/// for `timeout_seconds`, abort the communicator and throw FatalError (main then aborts
/// the job); its MPI waits (the id broadcast, host scalars) honour the stall timeout.
/// Throws ConfigError when the build has no NCCL.
std::unique_ptr<GradientReducer> make_nccl_reducer(const Communicator& team, int device, double timeout_seconds);

}  // namespace hnas::dist
