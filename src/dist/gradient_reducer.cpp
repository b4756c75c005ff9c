// SPDX-License-Identifier: Apache-2.0
// The MPI implementation of GradientReducer.
#include "hnas/dist/gradient_reducer.hpp"

#include <torch/torch.h>

#include <utility>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"

namespace hnas::dist {

void GradientReducer::pack_gradients(const std::vector<at::Tensor>& parameters, at::Tensor& flat) {
  int64_t total = 0;
  for (const auto& p : parameters) total += p.numel();
  const auto& first = parameters.front();
  if (!flat.defined() || flat.numel() != total || flat.scalar_type() != first.scalar_type() ||
      flat.device() != first.device())
    flat = torch::empty({total}, first.options());
  int64_t offset = 0;
  for (const auto& p : parameters) {
    auto slot = flat.narrow(0, offset, p.numel());
    if (p.grad().defined())
      slot.copy_(p.grad().reshape(-1));
    else
      slot.zero_();
    offset += p.numel();
  }
}

void GradientReducer::unpack_gradients(const at::Tensor& flat, const std::vector<at::Tensor>& parameters) {
  int64_t offset = 0;
  for (const auto& p : parameters) {
    auto slot = flat.narrow(0, offset, p.numel()).view(p.sizes());
    auto& grad = const_cast<at::Tensor&>(p).mutable_grad();
    if (grad.defined())
      grad.copy_(slot);
    else
      grad = slot.clone();
    offset += p.numel();
  }
}

namespace {

class MpiPendingBucket final : public PendingBucket {
 public:
  explicit MpiPendingBucket(PendingCollective pending) : pending_(std::move(pending)) {}
  bool test() override { return pending_.test(); }
  void wait() override { pending_.wait(); }

 private:
  PendingCollective pending_;
};

void check_cpu_float(const at::Tensor& t) {
  HNAS_ASSERT(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(),
              "the MPI reducer takes contiguous CPU float32 buckets");
}

size_t part_of(const at::Tensor& flat, int team_size) {
  HNAS_ASSERT(flat.numel() % team_size == 0,
              "a bucket of " << flat.numel() << " elements does not split into " << team_size << " equal parts");
  return static_cast<size_t>(flat.numel() / team_size);
}

class MpiReducer final : public GradientReducer {
 public:
  using GradientReducer::GradientReducer;

  void sum_gradients(const std::vector<at::Tensor>& parameters) override {
    for (const auto& p : parameters)
      HNAS_ASSERT(p.device().is_cpu() && p.scalar_type() == at::kFloat,
                  "the MPI reducer takes CPU float32 parameters (use NCCL for CUDA tensors)");
    pack_gradients(parameters, flat_);
    team_.all_reduce_sum(flat_.data_ptr<float>(), static_cast<size_t>(flat_.numel()));
    unpack_gradients(flat_, parameters);
  }

  void broadcast_from_leader(const std::vector<at::Tensor>& tensors) override {
    for (const auto& t : tensors) {
      HNAS_ASSERT(t.device().is_cpu() && t.is_contiguous(), "the MPI reducer broadcasts contiguous CPU tensors");
      team_.broadcast(t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size(), 0);
    }
  }
  using GradientReducer::broadcast_from_leader;

  std::unique_ptr<PendingBucket> start_sum(const at::Tensor& flat) override {
    check_cpu_float(flat);
    return std::make_unique<MpiPendingBucket>(
        team_.start_all_reduce_sum(flat.data_ptr<float>(), static_cast<size_t>(flat.numel())));
  }

  std::unique_ptr<PendingBucket> start_reduce_scatter(const at::Tensor& flat, const at::Tensor& shard) override {
    check_cpu_float(flat);
    check_cpu_float(shard);
    const size_t part = part_of(flat, team_.size());
    HNAS_ASSERT(static_cast<size_t>(shard.numel()) == part, "the shard must hold one part of the bucket");
    return std::make_unique<MpiPendingBucket>(
        team_.start_reduce_scatter_sum(flat.data_ptr<float>(), shard.data_ptr<float>(), part));
  }

  std::unique_ptr<PendingBucket> start_all_gather(const at::Tensor& flat) override {
    check_cpu_float(flat);
    return std::make_unique<MpiPendingBucket>(
        team_.start_all_gather(flat.data_ptr<float>(), part_of(flat, team_.size())));
  }

 private:
  at::Tensor flat_;  // kept between steps: one allocation per model
};

}  // namespace

std::unique_ptr<GradientReducer> make_mpi_reducer(const Communicator& team) {
  return std::make_unique<MpiReducer>(team);
}

#ifndef HNAS_HAVE_NCCL
bool nccl_built() { return false; }

std::string cuda_device_name(int) { return ""; }
int64_t cuda_device_memory_bytes(int) { return -1; }

std::unique_ptr<GradientReducer> make_nccl_reducer(const Communicator&, int, double) {
  throw ConfigError("this hnas was built without NCCL: rebuild with -DHNAS_WITH_NCCL=ON (needs CUDA and NCCL)");
}
#endif

}  // namespace hnas::dist
