// SPDX-License-Identifier: Apache-2.0
// The NCCL implementation of GradientReducer (built with HNAS_WITH_NCCL).
//
// Streams: LibTorch's current CUDA stream is the legacy default stream unless a caller
// changes it, and this file cannot include ATen's CUDA headers (it must also build
// against a CPU LibTorch). The blocking collectives run on the legacy default stream:
// they are ordered after the backward kernels and before the optimizer's without any
// event. The bucket collectives (start_*) run on the reducer's own non-blocking stream,
// so that they overlap the backward kernels queued after them: an event recorded on the
// default stream orders each after the gradients it reads, and wait() makes the default
// stream wait for its completion event before the optimizer reads the result.
// Waiting polls the stream and ncclCommGetAsyncError, so a peer that died or a broken
// link ends in an abort with a message, never in a hang. The MPI traffic here (the id
// broadcast, the host scalars) polls under the communicator's stall timeout.
#include <cuda_runtime.h>
#include <nccl.h>
#include <torch/torch.h>

#include <chrono>
#include <exception>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/log.hpp"
#include "hnas/dist/gradient_reducer.hpp"

namespace hnas::dist {
namespace {

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw FatalError(std::string("CUDA call failed: ") + what + ": " + cudaGetErrorString(status));
}

ncclDataType_t nccl_type(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return ncclFloat32;
    case at::kDouble:
      return ncclFloat64;
    case at::kHalf:
      return ncclFloat16;
    case at::kBFloat16:
      return ncclBfloat16;
    default:
      throw InternalError(std::string("NCCL reducer: unsupported dtype ") + c10::toString(type));
  }
}

class NcclReducer;

// A bucket collective queued on the reducer's stream; `done` completes with it.
class NcclPendingBucket final : public PendingBucket {
 public:
  NcclPendingBucket(NcclReducer& owner, cudaEvent_t done, const char* what, std::vector<at::Tensor> buffers)
      : owner_(owner), done_(done), what_(what), buffers_(std::move(buffers)) {}
  // Unwaited (an error unwinds): later work on the default stream, including the caching
  // allocator's reuse of the buffers, is ordered after the collective. The event itself
  // is released once it completes.
  ~NcclPendingBucket() override {
    if (!waited_) cudaStreamWaitEvent(nullptr, done_, 0);
    cudaEventDestroy(done_);
  }
  NcclPendingBucket(const NcclPendingBucket&) = delete;
  NcclPendingBucket& operator=(const NcclPendingBucket&) = delete;
  bool test() override;
  void wait() override;

 private:
  NcclReducer& owner_;
  cudaEvent_t done_;
  const char* what_;
  std::vector<at::Tensor> buffers_;  // alive until the collective is done
  bool waited_ = false;
};

class NcclReducer final : public GradientReducer {
 public:
  NcclReducer(const Communicator& team, int device, double timeout_seconds)
      : GradientReducer(team), device_(device), timeout_seconds_(timeout_seconds) {
    check_cuda(cudaSetDevice(device_), "cudaSetDevice");
    ncclUniqueId id{};
    if (team.rank() == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    team.broadcast(&id, sizeof id, 0);
    check(ncclCommInitRank(&comm_, team.size(), id, team.rank()), "ncclCommInitRank");
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  }

  // Destroying a communicator waits for its peers; while an exception unwinds (a peer may
  // be gone or stuck) only an abort is safe: it frees this rank's side without waiting.
  ~NcclReducer() override {
    if (comm_ != nullptr) {
      if (std::uncaught_exceptions() > 0)
        ncclCommAbort(comm_);
      else
        ncclCommDestroy(comm_);
    }
    if (stream_ != nullptr) cudaStreamDestroy(stream_);  // after the communicator that used it
  }

  void sum_gradients(const std::vector<at::Tensor>& parameters) override {
    HNAS_ASSERT(!parameters.empty(), "no parameters");
    for (const auto& p : parameters)
      HNAS_ASSERT(p.is_cuda() && p.scalar_type() == parameters.front().scalar_type(),
                  "the NCCL reducer takes CUDA parameters of one dtype");
    pack_gradients(parameters, flat_);
    check(ncclAllReduce(flat_.data_ptr(), flat_.data_ptr(), static_cast<size_t>(flat_.numel()),
                        nccl_type(flat_.scalar_type()), ncclSum, comm_, /*stream=*/nullptr),
          "ncclAllReduce");
    wait("ncclAllReduce");
    unpack_gradients(flat_, parameters);
  }

  void broadcast_from_leader(const std::vector<at::Tensor>& tensors) override {
    check(ncclGroupStart(), "ncclGroupStart");
    for (const auto& t : tensors) {
      HNAS_ASSERT(t.is_cuda() && t.is_contiguous(), "the NCCL reducer broadcasts contiguous CUDA tensors");
      check(ncclBroadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t.scalar_type()), 0,
                          comm_, nullptr),
            "ncclBroadcast");
    }
    check(ncclGroupEnd(), "ncclGroupEnd");
    wait("ncclBroadcast");
  }
  using GradientReducer::broadcast_from_leader;

  std::unique_ptr<PendingBucket> start_sum(const at::Tensor& flat) override {
    check_bucket(flat);
    return launch("ncclAllReduce (bucket)", {flat}, [&] {
      return ncclAllReduce(flat.data_ptr(), flat.data_ptr(), static_cast<size_t>(flat.numel()),
                           nccl_type(flat.scalar_type()), ncclSum, comm_, stream_);
    });
  }

  std::unique_ptr<PendingBucket> start_reduce_scatter(const at::Tensor& flat, const at::Tensor& shard) override {
    check_bucket(flat);
    check_bucket(shard);
    const size_t part = part_of(flat);
    HNAS_ASSERT(static_cast<size_t>(shard.numel()) == part, "the shard must hold one part of the bucket");
    return launch("ncclReduceScatter", {flat, shard}, [&] {
      return ncclReduceScatter(flat.data_ptr(), shard.data_ptr(), part, nccl_type(flat.scalar_type()), ncclSum, comm_,
                               stream_);
    });
  }

  std::unique_ptr<PendingBucket> start_all_gather(const at::Tensor& flat) override {
    check_bucket(flat);
    const size_t part = part_of(flat);
    // In place: NCCL takes this rank's part at its offset in the output.
    const auto* mine = static_cast<const char*>(flat.data_ptr()) + part * team_.rank() * flat.element_size();
    return launch("ncclAllGather", {flat}, [&] {
      return ncclAllGather(mine, flat.data_ptr(), part, nccl_type(flat.scalar_type()), comm_, stream_);
    });
  }

  // Polls `done` until the collective finished, watching for asynchronous errors.
  bool poll(cudaEvent_t done, const char* what) {
    const cudaError_t state = cudaEventQuery(done);
    if (state == cudaSuccess) return true;
    if (state != cudaErrorNotReady) fail(std::string(what) + ": " + cudaGetErrorString(state));
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(comm_, &async);
    if (async != ncclSuccess && async != ncclInProgress)
      fail(std::string(what) + ": asynchronous NCCL error: " + ncclGetErrorString(async));
    return false;
  }

  void wait_event(cudaEvent_t done, const char* what) {
    const auto start = std::chrono::steady_clock::now();
    while (!poll(done, what)) {
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (timeout_seconds_ > 0 && waited > timeout_seconds_)
        fail(log::format("%s made no progress for %.0f s (a peer may have died)", what, waited));
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    check_cuda(cudaStreamWaitEvent(nullptr, done, 0), "cudaStreamWaitEvent");
  }

 private:
  void check_bucket(const at::Tensor& t) const {
    HNAS_ASSERT(t.is_cuda() && t.is_contiguous(), "the NCCL reducer takes contiguous CUDA buckets");
  }

  size_t part_of(const at::Tensor& flat) const {
    HNAS_ASSERT(flat.numel() % team_.size() == 0,
                "a bucket of " << flat.numel() << " elements does not split into " << team_.size() << " equal parts");
    return static_cast<size_t>(flat.numel() / team_.size());
  }

  // Orders `collective` after the work queued so far on the compute (default) stream, queues
  // it on the reducer's stream and returns its completion.
  template <typename Collective>
  std::unique_ptr<PendingBucket> launch(const char* what, std::vector<at::Tensor> buffers, Collective collective) {
    cudaEvent_t ready = nullptr, done = nullptr;
    check_cuda(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    check_cuda(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    check_cuda(cudaEventRecord(ready, nullptr), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(stream_, ready, 0), "cudaStreamWaitEvent");
    cudaEventDestroy(ready);  // released once the stream has passed it
    auto pending = std::make_unique<NcclPendingBucket>(*this, done, what, std::move(buffers));
    check(collective(), what);
    check_cuda(cudaEventRecord(done, stream_), "cudaEventRecord");
    return pending;
  }

  void check(ncclResult_t result, const char* what) {
    if (result == ncclSuccess || result == ncclInProgress) return;
    fail(std::string(what) + ": " + ncclGetErrorString(result));
  }

  // Polls the stream until the collective finished, watching for asynchronous errors.
  void wait(const char* what) {
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      const cudaError_t state = cudaStreamQuery(nullptr);
      if (state == cudaSuccess) return;
      if (state != cudaErrorNotReady) fail(std::string(what) + ": " + cudaGetErrorString(state));
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess && async != ncclInProgress)
        fail(std::string(what) + ": asynchronous NCCL error: " + ncclGetErrorString(async));
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (timeout_seconds_ > 0 && waited > timeout_seconds_)
        fail(log::format("%s made no progress for %.0f s (a peer may have died)", what, waited));
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  [[noreturn]] void fail(const std::string& message) {
    if (comm_ != nullptr) ncclCommAbort(comm_);
    comm_ = nullptr;
    throw FatalError("NCCL (team rank " + std::to_string(team_.rank()) + ", device " + std::to_string(device_) +
                     "): " + message);
  }

  int device_;
  double timeout_seconds_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  at::Tensor flat_;
};

bool NcclPendingBucket::test() { return waited_ || owner_.poll(done_, what_); }

void NcclPendingBucket::wait() {
  if (waited_) return;
  owner_.wait_event(done_, what_);
  waited_ = true;
}

}  // namespace

bool nccl_built() { return true; }

std::string cuda_device_name(int device) {
  cudaDeviceProp properties{};
  if (cudaGetDeviceProperties(&properties, device) != cudaSuccess) return "";
  return properties.name;
}

int64_t cuda_device_memory_bytes(int device) {
  cudaDeviceProp properties{};
  if (cudaGetDeviceProperties(&properties, device) != cudaSuccess) return -1;
  return static_cast<int64_t>(properties.totalGlobalMem);
}

std::unique_ptr<GradientReducer> make_nccl_reducer(const Communicator& team, int device, double timeout_seconds) {
  return std::make_unique<NcclReducer>(team, device, timeout_seconds);
}

}  // namespace hnas::dist
