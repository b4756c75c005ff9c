// SPDX-License-Identifier: Apache-2.0
// `hnas evaluate`: train one architecture on one process and print its metrics.
#pragma once

#include "hnas/cli/options.hpp"

namespace hnas::pipeline {

/// Sets the thread count, prints the plan, evaluates (unless dry_run) and prints the
/// per-setting and per-task results. Returns the process exit code. Rank-local.
int run_evaluate(const cli::EvaluateOptions& options);

/// Intra-op threads to use: `requested` if > 0, else SLURM_CPUS_PER_TASK, else all cores.
int resolve_threads(int requested);

}  // namespace hnas::pipeline
