// SPDX-License-Identifier: Apache-2.0
// `hnas search`: the distributed search engine. The job's world is split into teams of
// ranks_per_candidate ranks; rank 0 owns the strategy and the results file and is also
// the leader of team 0; team leaders pull the next candidate whenever they finish (no
// batch barrier), and each team trains its candidate data-parallel.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "hnas/io/provenance.hpp"
#include "hnas/search/candidate_evaluation.hpp"
#include "hnas/search/strategy.hpp"
#include "hnas/train/evaluation.hpp"

namespace hnas::dist {
class Communicator;
}

namespace hnas::search {

/// What a search runs: a strategy over a space of architectures, each candidate
/// evaluated as `hnas evaluate` would, by teams of ranks.
struct SearchOptions {
  train::EvaluationOptions evaluation;  ///< the candidates' objective, width and recipe
  StrategyOptions strategy;
  int64_t ranks_per_candidate = 1;  ///< team size G; the world size must be a multiple
  /// Most of the wall time results.h5 writes may take: writes are spaced so that the time
  /// spent writing stays below this fraction (the file is always rewritten at the end).
  double results_overhead = 0.005;
  FaultInjection faults;
};

/// What the job gives the search: where it runs and what it records as provenance.
struct SearchJob {
  const dist::Communicator* world = nullptr;  ///< every rank of the job
  int gpu = -1;                               ///< this rank's CUDA device, or -1 for the CPU
  bool cuda = false;                          ///< run.device = cuda (gpu is -1 on a dry run without one)
  int ranks_on_node = 1;                      ///< ranks sharing this rank's node (and its memory)
  double nccl_timeout = 600;                  ///< seconds without NCCL progress before the job aborts
  double stall_timeout = 0;                   ///< seconds a rank may wait for a peer inside training (0: forever)
  std::string run_dir;                        ///< results.h5 lives here (held by the job's lock)
  bool dry_run = false;                       ///< validate and print the plan, write nothing
  int plan_ranks = 0;                         ///< a dry run's --ranks: plan for so many (0: the world's)
  /// Takes the run directory (pipeline::RunContext::hold_run_directory). Rank 0, after
  /// validation and before results.h5 is read; may be empty (tests).
  std::function<void()> hold_run_directory;
  io::Provenance provenance;  ///< the job's (configuration text, versions, host, data)
  /// Keys ("section.key") a resumed search may change; every other key of the recorded
  /// configuration must equal this job's (from the option table's resume flags).
  std::vector<std::string> keys_free_on_resume;
  /// Every key's default as INI text: a key that a record written by an older hnas lacks
  /// is compared as its default.
  std::map<std::string, std::string> key_defaults;
};

/// Runs (or resumes) the search in job.run_dir and returns the exit code: 0 done,
/// kExitResumable after a stop signal with the state saved. Collective over job.world.
/// Start-up problems (configuration, inputs, run directory) throw CollectiveError on
/// every rank.
int run_search(const SearchOptions& options, const SearchJob& job);

/// True when job.run_dir/results.h5 holds a completed search of this configuration on
/// the same data (a different one is not complete: run_search refuses it). Collective
/// over job.world; rank 0 reads the file.
bool search_complete(const SearchOptions& options, const SearchJob& job);

}  // namespace hnas::search
