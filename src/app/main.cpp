// SPDX-License-Identifier: Apache-2.0
// hnas: the entry point. Parses the command, runs it, and is the one place that decides
// how the process ends (exit codes in hnas/core/error.hpp).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "hnas/cli/options.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/log.hpp"
#include "hnas/pipeline/evaluate_command.hpp"
#include "hnas/train/throughput.hpp"
#include "hnas/version.hpp"

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // batch logs: line by line, even when redirected
  // OpenBLAS reads OPENBLAS_CORETYPE only when it loads, so a process that got the slow
  // generic kernels restarts itself once with the right core type (same pid, same argv).
  const std::string core = hnas::train::better_openblas_core();
  if (!core.empty() && std::getenv("OPENBLAS_CORETYPE") == nullptr) {
    setenv("OPENBLAS_CORETYPE", core.c_str(), /*overwrite=*/0);
    execv("/proc/self/exe", argv);  // returns only on failure: carry on with the slow kernels
  }
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
