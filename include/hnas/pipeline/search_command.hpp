// SPDX-License-Identifier: Apache-2.0
// `hnas search`: the distributed search engine. MPI_COMM_WORLD is split into teams of
// search.ranks_per_candidate ranks; rank 0 owns the strategy and the results file and is
// also the leader of team 0; team leaders pull the next candidate whenever they finish
// (no batch barrier), and each team trains its candidate data-parallel.
#pragma once

#include "hnas/cli/options.hpp"

namespace hnas::pipeline {

/// Runs (or resumes) the search in options.run_dir and returns the exit code: 0 done,
/// kExitResumable after a stop signal with the state saved. Collective over
/// MPI_COMM_WORLD (MPI must be initialised). Start-up problems (configuration, inputs,
/// run directory) throw CollectiveError on every rank.
int run_search(const cli::SearchOptions& options);

}  // namespace hnas::pipeline
