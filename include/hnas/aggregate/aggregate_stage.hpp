// SPDX-License-Identifier: Apache-2.0
// `hnas aggregate`: the Aggregator as a stage of the run directory. It reads the search's
// results.h5, takes the top K-means cluster of the candidates at the search's highest
// fidelity, combines it by N_c clustering (or takes the best candidate), evaluates the
// aggregate with the search's own evaluator unless the search already did, checks it
// against the cluster it came from, and writes /aggregate beside /search.
#pragma once

#include <functional>
#include <string>

#include "hnas/aggregate/consensus.hpp"
#include "hnas/search/search_job.hpp"

namespace hnas::dist {
class Communicator;
}

namespace hnas::aggregate {

enum class AggregateMethod {
  Consensus,  ///< N_c clustering with the configured context c
  Best,       ///< the single best candidate at the highest fidelity
};

/// What to do when the aggregate fails the checks (it scores below the top cluster's
/// lowest member, or its attention fraction lies outside the members' range).
enum class Fallback {
  None,     ///< keep it, with the warning
  Best,     ///< take the best candidate instead
  Context,  ///< try longer contexts (N_1, then N_all), then the best candidate
};

struct AggregateOptions {
  int clusters = 5;  ///< K of the K-means on the objective
  AggregateMethod method = AggregateMethod::Consensus;
  int context = 0;  ///< c of N_c, or kContextAll
  /// The top cluster keeps at most this fraction of the valid candidates (its best ones);
  /// 1 keeps the whole cluster, as the paper does.
  double top_fraction = 1.0;
  bool evaluate = true;  ///< train the aggregate when the search has not evaluated it
  Fallback fallback = Fallback::None;
  bool partial = false;  ///< accept a search that has not completed (said so in the output)
  /// The search's options from its recorded configuration (/provenance/config): the
  /// aggregate is evaluated exactly as the search evaluated its candidates. Pure; called
  /// on every rank. Supplied by cli (cli::search_options_from_config).
  std::function<search::SearchOptions(const std::string& recorded_config)> search_options;
};

/// "n0", "n1", "nall" or "best": the method's name in the record and the log.
std::string method_label(AggregateMethod method, int context);

/// Where the stage runs (from the pipeline's RunContext).
struct AggregateJob {
  const dist::Communicator* world = nullptr;
  int gpu = -1;
  int ranks_on_node = 1;
  double nccl_timeout = 600;
  double stall_timeout = 0;
  std::string run_dir;
  bool dry_run = false;
  std::function<void()> hold_run_directory;  ///< rank 0, before results.h5 is read
  std::string config;                        ///< this job's effective configuration (stored)
};

/// Aggregates the search in job.run_dir and writes /aggregate; returns 0, or
/// kExitResumable when a stop signal ended the aggregate's evaluation (nothing written).
/// Collective over job.world. Throws CollectiveError (exit 2) on every rank when there is
/// no search in the directory, it has not completed (without options.partial), or it has
/// no valid candidate.
int run_aggregate(const AggregateOptions& options, const AggregateJob& job);

/// True when /aggregate is complete and was made from the same search results with the
/// same options. Collective over job.world; rank 0 reads the file.
bool aggregate_complete(const AggregateOptions& options, const AggregateJob& job);

/// The aggregate recorded in a results file, for the extrapolator. Rank-local.
struct RecordedAggregate {
  arch::Genome genome;
  std::string method;       ///< method_used: n0, best, ...
  std::string fingerprint;  ///< input_fingerprint of /aggregate
  bool partial = false;     ///< made from a search that had not completed
};
/// Throws InputError naming the file when it has no completed /aggregate.
RecordedAggregate read_recorded_aggregate(const std::string& results_path);

}  // namespace hnas::aggregate
