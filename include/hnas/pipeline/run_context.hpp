// SPDX-License-Identifier: Apache-2.0
// What one hnas job runs with, built once in main and handed to every stage: the world
// communicator, this rank's place on its node and its device, the threads per rank, the
// run directory (held under a lock for the job's lifetime) and the provenance every
// stage records.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hnas/dist/communicator.hpp"
#include "hnas/io/provenance.hpp"

namespace hnas::io {
class RunDirectoryLock;
}

namespace hnas::pipeline {

/// The [run] section and the job-wide command-line settings.
struct JobOptions {
  int threads = 0;    ///< intra-op CPU threads per rank (0: SLURM_CPUS_PER_TASK, else cores / ranks on the node)
  bool cuda = false;  ///< run.device = cuda: one GPU per rank (node-local rank modulo the visible GPUs)
  double nccl_timeout = 600;  ///< seconds a NCCL collective may make no progress before the job aborts
  double stall_timeout = 0;   ///< seconds a rank may wait for a peer inside training before the job ends (0: forever)
  std::string run_dir;        ///< empty for commands without one (evaluate)
  bool dry_run = false;       ///< validate and print the plan; train and write nothing
  /// The walltime deadline (Unix seconds; 0: none), from --deadline or SLURM_JOB_END_TIME,
  /// and where it came from; stages stop with exit 75 `deadline_margin` seconds before it.
  double deadline_unix = 0;
  std::string deadline_source;
  double deadline_margin = 60;
  /// --ranks: the world a dry run plans for (0: this job's). A dry run with run.device =
  /// cuda plans for GPUs without needing one.
  int plan_ranks = 0;
  std::string effective_ini;                        ///< every key with its effective value, re-loadable
  std::vector<std::string> keys_free_on_resume;     ///< keys a resumed run may change
  std::map<std::string, std::string> key_defaults;  ///< every key's default, as INI text
};

class RunContext {
 public:
  /// Collective over MPI_COMM_WORLD (MPI must be running): sets this rank's log prefix,
  /// thread count and GPU, and every rank's deadline to rank 0's. Problems throw
  /// CollectiveError on every rank.
  explicit RunContext(JobOptions options);
  ~RunContext();
  RunContext(const RunContext&) = delete;
  RunContext& operator=(const RunContext&) = delete;

  const dist::Communicator& world() const { return world_; }
  int node_rank() const { return node_rank_; }
  int ranks_on_node() const { return ranks_on_node_; }
  int gpu() const { return gpu_; }  ///< this rank's CUDA device, or -1 on the CPU
  int threads() const { return threads_; }
  const JobOptions& options() const { return options_; }
  const std::string& run_dir() const { return options_.run_dir; }
  bool dry_run() const { return options_.dry_run; }
  /// The ranks a plan is made for: --ranks on a dry run, else the world's.
  int plan_ranks() const { return options_.plan_ranks > 0 ? options_.plan_ranks : world_.size(); }
  /// Versions, host, start time, world size and the configuration text.
  const io::Provenance& provenance() const { return provenance_; }

  /// Takes the run directory for the rest of the job: creates it if missing, refuses it
  /// when it is not writable or another live job holds it (ConfigError naming the
  /// holder). Rank 0, once the stage has validated its inputs (a refused configuration
  /// leaves no directory behind); later calls do nothing, as does a dry run.
  void hold_run_directory() const;

 private:
  JobOptions options_;
  dist::Communicator world_;
  int node_rank_ = 0, ranks_on_node_ = 1, gpu_ = -1, threads_ = 1;
  io::Provenance provenance_;
  mutable std::unique_ptr<io::RunDirectoryLock> lock_;  // rank 0, once a stage holds the run directory
};

}  // namespace hnas::pipeline
