// SPDX-License-Identifier: Apache-2.0
// hnas: the entry point. Parses the command, runs it, and is the one place that decides
// how the process ends (exit codes in hnas/core/error.hpp): an error every rank agreed on
// ends the job cleanly with one message from rank 0; any other error in a multi-rank job
// is printed by the rank that hit it, which then aborts the job (never a hang).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>

#include "hnas/cli/options.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/log.hpp"
#include "hnas/core/signals.hpp"
#include "hnas/dist/communicator.hpp"
#include "hnas/pipeline/evaluate_command.hpp"
#include "hnas/pipeline/search_command.hpp"
#include "hnas/train/throughput.hpp"
#include "hnas/version.hpp"

namespace {

// This process's rank: from MPI once it runs, else from the launcher's environment
// (errors found before MPI starts are the same on every rank; one copy is enough).
int world_rank() {
  int initialized = 0, rank = 0;
  MPI_Initialized(&initialized);
  if (initialized) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
  }
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"})
    if (const char* value = std::getenv(name)) return std::atoi(value);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // batch logs: line by line, even when redirected
  // OpenBLAS and OpenMP read their settings only when they load: a process that would
  // get slow kernels or fighting thread pools restarts itself once with the right ones.
  hnas::train::restart_with_launch_environment(argv);
  hnas::train::keep_freed_memory();
  hnas::install_stop_signal_handlers();
  // MPI starts before parsing for the commands that use it, so that every rank agrees on a
  // bad configuration and rank 0 reports it before any rank exits.
  std::optional<hnas::dist::MpiSession> mpi;
  if (argc > 1 && std::string(argv[1]) == "search") mpi.emplace(&argc, &argv);
  try {
    hnas::cli::Invocation invocation;
    if (mpi)
      hnas::dist::agree_on_errors(hnas::dist::Communicator::world(),
                                  [&] { invocation = hnas::cli::parse_command_line(argc, argv); });
    else
      invocation = hnas::cli::parse_command_line(argc, argv);
    switch (invocation.command) {
      case hnas::cli::Command::Help:
        if (world_rank() == 0) std::fputs(invocation.help.c_str(), stdout);
        return hnas::kExitOk;
      case hnas::cli::Command::Version:
        std::printf("hnas %s (%s)\n", hnas::kVersion, hnas::kGitRevision);
        return hnas::kExitOk;
      case hnas::cli::Command::Evaluate:
        return hnas::pipeline::run_evaluate(invocation.evaluate);
      case hnas::cli::Command::Search:
        return hnas::pipeline::run_search(invocation.search);
    }
  } catch (const hnas::CollectiveError& e) {
    if (world_rank() == 0) hnas::log::error(e.what());
    MPI_Barrier(MPI_COMM_WORLD);  // the message is out before any rank's exit ends the job
    return e.exit_code();
  } catch (const hnas::Error& e) {
    if (mpi) {  // only this rank knows: it speaks and takes the job down
      hnas::log::error(e.what());
      hnas::dist::abort_job(e.exit_code());
    }
    // Before MPI starts, errors come from the command line, identical on every rank.
    if (world_rank() == 0) hnas::log::error(e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    hnas::log::error(std::string("unexpected: ") + e.what());
    if (mpi) hnas::dist::abort_job(hnas::kExitInternal);
    return hnas::kExitInternal;
  }
  return hnas::kExitInternal;
}
