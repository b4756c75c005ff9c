// SPDX-License-Identifier: Apache-2.0
// hnas: the entry point. Parses the command, runs it, and is the one place that decides
// how the process ends (exit codes in hnas/core/error.hpp).
#include <cstdio>
#include <exception>

#include "hnas/cli/options.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/log.hpp"
#include "hnas/pipeline/evaluate_command.hpp"
#include "hnas/train/throughput.hpp"
#include "hnas/version.hpp"

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // batch logs: line by line, even when redirected
  // OpenBLAS and OpenMP read their settings only when they load: a process that would
  // get slow kernels or fighting thread pools restarts itself once with the right ones.
  hnas::train::restart_with_launch_environment(argv);
  hnas::train::keep_freed_memory();
  try {
    const auto invocation = hnas::cli::parse_command_line(argc, argv);
    switch (invocation.command) {
      case hnas::cli::Command::Help:
        std::fputs(invocation.help.c_str(), stdout);
        return hnas::kExitOk;
      case hnas::cli::Command::Version:
        std::printf("hnas %s (%s)\n", hnas::kVersion, hnas::kGitRevision);
        return hnas::kExitOk;
      case hnas::cli::Command::Evaluate:
        return hnas::pipeline::run_evaluate(invocation.evaluate);
    }
  } catch (const hnas::Error& e) {
    hnas::log::error(e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    hnas::log::error(std::string("unexpected: ") + e.what());
    return hnas::kExitInternal;
  }
  return hnas::kExitInternal;
}
