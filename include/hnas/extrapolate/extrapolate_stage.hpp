// SPDX-License-Identifier: Apache-2.0
// `hnas extrapolate`: the Extrapolator as a stage. It takes an architecture (given, or
// the run directory's aggregate), scales it to a target size by stacking or stretching,
// prints the result next to the target's Llama baseline, and, with a run directory,
// writes /extrapolate beside /aggregate.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "hnas/extrapolate/extrapolate.hpp"
#include "hnas/extrapolate/target.hpp"

namespace hnas::dist {
class Communicator;
}

namespace hnas::extrapolate {

enum class MethodChoice {
  Auto,  ///< the paper's recipe: stretch searches of 16 or more layers, stack shorter ones
  Stack,
  Stretch,
};

struct ExtrapolateOptions {
  std::optional<arch::Genome> arch;  ///< --arch; else the run directory's /aggregate
  MethodChoice method = MethodChoice::Auto;
  TargetShape target;  ///< a preset, possibly with fields overridden, or custom
};

/// The method `choice` resolves to for a source of `layers` layers.
Method resolve_method(MethodChoice choice, size_t layers);

struct ExtrapolateJob {
  const dist::Communicator* world = nullptr;
  std::string run_dir;  ///< empty: print only
  bool dry_run = false;
  std::function<void()> hold_run_directory;  ///< rank 0, before results.h5 is read
  std::string config;                        ///< this job's effective configuration (stored)
};

/// Extrapolates, prints the comparison with the baseline from rank 0, and writes
/// /extrapolate when job.run_dir is set. Returns 0. Collective over job.world (rank 0
/// works, the others agree on its errors). Throws CollectiveError (exit 2) when there is
/// no architecture to extrapolate (no --arch and no aggregate in the directory) or the
/// architecture uses a primitive the target does not define.
int run_extrapolate(const ExtrapolateOptions& options, const ExtrapolateJob& job);

/// True when job.run_dir holds a complete /extrapolate of the same source and options.
/// Collective over job.world; rank 0 reads the file.
bool extrapolate_complete(const ExtrapolateOptions& options, const ExtrapolateJob& job);

}  // namespace hnas::extrapolate
