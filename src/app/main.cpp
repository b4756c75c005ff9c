// SPDX-License-Identifier: Apache-2.0
// hnas: the entry point, and the one place that decides how the process ends (exit codes
// in hnas/core/error.hpp): an error every rank agreed on ends the job cleanly with one
// message from rank 0; any other error in a multi-rank job is printed by the rank that
// hit it, which then aborts the job (never a hang).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "hnas/cli/options.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/log.hpp"
#include "hnas/core/process.hpp"
#include "hnas/core/signals.hpp"
#include "hnas/dist/communicator.hpp"
#include "hnas/version.hpp"

namespace {

// For the job scripts (jobs/common/launch.sh): rank 0 writes its exit code to the file
// HNAS_EXIT_STATUS_FILE names, because a launcher (srun) can exit 0 without having
// started hnas at all.
int record_exit_status(int rank, int code) {
  const char* path = std::getenv("HNAS_EXIT_STATUS_FILE");
  if (rank != 0 || !path || !*path) return code;
  if (FILE* file = std::fopen(path, "w")) {
    std::fprintf(file, "%d\n", code);
    std::fclose(file);
  }
  return code;
}

int run(const hnas::dist::Communicator& world, int argc, char** argv) {
  try {
    hnas::cli::Invocation invocation;
    hnas::dist::agree_on_errors(world, [&] { invocation = hnas::cli::parse_command_line(argc, argv); });
    if (invocation.command == hnas::cli::Command::Help) {
      if (world.rank() == 0) std::fputs(invocation.help.c_str(), invocation.usage_error ? stderr : stdout);
      return invocation.usage_error ? hnas::kExitConfig : hnas::kExitOk;
    }
    if (invocation.command == hnas::cli::Command::Version) {
      if (world.rank() == 0) std::printf("hnas %s (%s)\n", hnas::kVersion, hnas::kGitRevision);
      return hnas::kExitOk;
    }
    hnas::pipeline::RunContext context(invocation.job);
    return hnas::pipeline::run_stages(context, hnas::cli::stages_of(invocation));
  } catch (const hnas::CollectiveError& e) {
    if (world.rank() == 0) hnas::log::error(e.what());
    world.barrier();  // the message is out before any rank's exit ends the job
    return e.exit_code();
  } catch (const hnas::Error& e) {  // only this rank knows: it speaks and takes the job down
    hnas::log::error(e.what());
    if (world.size() > 1) hnas::dist::abort_job(e.exit_code());
    return e.exit_code();
  } catch (const std::exception& e) {
    hnas::log::error(std::string("unexpected: ") + e.what());
    if (world.size() > 1) hnas::dist::abort_job(hnas::kExitInternal);
    return hnas::kExitInternal;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // batch logs: line by line, even when redirected
  // OpenBLAS and OpenMP read their settings only when they load: a process that would
  // get slow kernels or fighting thread pools restarts itself once with the right ones.
  hnas::restart_with_launch_environment(argv);
  hnas::keep_freed_memory();
  hnas::install_stop_signal_handlers();
  // MPI starts before parsing, so that every rank agrees on a bad configuration and rank 0
  // reports it before any rank exits. Without mpirun this is a one-rank job.
  hnas::dist::MpiSession mpi(&argc, &argv);
  const auto world = hnas::dist::Communicator::world();
  return record_exit_status(world.rank(), run(world, argc, argv));
}
