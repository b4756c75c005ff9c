// SPDX-License-Identifier: Apache-2.0
#include "hnas/pipeline/run_context.hpp"

#include <hdf5.h>
#include <torch/cuda.h>
#include <torch/version.h>
#include <unistd.h>

#include "hnas/core/check.hpp"
#include "hnas/core/deadline.hpp"
#include "hnas/core/log.hpp"
#include "hnas/core/process.hpp"
#include "hnas/dist/gradient_reducer.hpp"
#include "hnas/io/run_directory.hpp"
#include "hnas/train/throughput.hpp"
#include "hnas/version.hpp"

namespace hnas::pipeline {
namespace {

io::Provenance job_provenance(const JobOptions& o, const dist::Communicator& world) {
  io::Provenance p;
  p.config = o.effective_ini;
  p.hnas_version = kVersion;
  p.git_revision = kGitRevision;
  p.torch_version = TORCH_VERSION;
  p.mpi_version = dist::mpi_library_version();
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  p.hdf5_version = log::format("%u.%u.%u", major, minor, release);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  p.hostname = host;
  p.started_utc = log::utc_timestamp();
  p.world_size = world.size();
  return p;
}

}  // namespace

RunContext::RunContext(JobOptions options) : options_(std::move(options)), world_(dist::Communicator::world()) {
  log::set_rank(world_.rank(), world_.rank() == 0);
  const auto node = world_.split_node_local();
  node_rank_ = node.rank();
  ranks_on_node_ = node.size();
  threads_ = resolve_threads(options_.threads, ranks_on_node_);
  train::set_compute_threads(threads_);
  provenance_ = job_provenance(options_, world_);
  dist::agree_on_errors(world_, [&] {
    if (options_.cuda && !options_.dry_run) {  // a dry run plans GPU jobs on a login node
      HNAS_CHECK(torch::cuda::is_available(), ConfigError,
                 "run.device = cuda, but LibTorch sees no CUDA device (a CPU build of LibTorch, or no GPU here)");
      HNAS_CHECK(world_.size() == 1 || dist::nccl_built(), ConfigError,
                 "run.device = cuda on several ranks needs NCCL: rebuild with -DHNAS_WITH_NCCL=ON");
      gpu_ = node_rank_ % static_cast<int>(torch::cuda::device_count());
    }
  });
  // Rank 0's clock and environment decide, so that every rank stops at the same step.
  double deadline = options_.deadline_unix;
  world_.broadcast(&deadline, sizeof deadline, 0);
  if (deadline > 0) {
    const WallTime end(std::chrono::duration_cast<WallTime::duration>(std::chrono::duration<double>(deadline)));
    set_deadline(end, options_.deadline_margin);
    log::info(log::format(
        "deadline %s (%s, in %s): work that would end less than %.3g s before it is not started; "
        "the job then stops with exit code 75",
        format_wall_time(end).c_str(), options_.deadline_source.c_str(),
        log::format_duration(seconds_before_deadline() + options_.deadline_margin).c_str(), options_.deadline_margin));
  } else {
    clear_deadline();
  }
}

void RunContext::hold_run_directory() const {
  // A dry run writes nothing and may look at a directory a live job holds.
  if (lock_ || options_.run_dir.empty() || options_.dry_run) return;
  lock_ = std::make_unique<io::RunDirectoryLock>(options_.run_dir);
}

RunContext::~RunContext() = default;

}  // namespace hnas::pipeline
