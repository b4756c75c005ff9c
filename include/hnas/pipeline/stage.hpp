// SPDX-License-Identifier: Apache-2.0
// A stage of the Composer pipeline (evaluate, search, and later aggregate, extrapolate,
// pretrain): one folder of its own plus one registration here. Stages read earlier
// stages' output only through the run directory, so each can run as its own job or in
// sequence within one.
#pragma once

#include <memory>
#include <vector>

#include "hnas/aggregate/aggregate_stage.hpp"
#include "hnas/arch/genome.hpp"
#include "hnas/extrapolate/extrapolate_stage.hpp"
#include "hnas/generate/generate.hpp"
#include "hnas/pipeline/run_context.hpp"
#include "hnas/pretrain/pretrain.hpp"
#include "hnas/search/search_job.hpp"
#include "hnas/train/evaluation.hpp"

namespace hnas::pipeline {

class Stage {
 public:
  virtual ~Stage() = default;
  /// Its name in logs and messages ("search").
  virtual const char* name() const = 0;
  /// Whether it keeps its output in a run directory (then --run-dir is required).
  virtual bool needs_run_dir() const = 0;
  /// Whether its output in the run directory is complete (then it is skipped). Rank 0
  /// reads the directory; the answer is the same on every rank. Collective.
  virtual bool complete(const RunContext& context) const = 0;
  /// Runs (or resumes) the stage; returns the exit code (0, or kExitResumable after a stop
  /// signal with its state durable). Collective over context.world().
  virtual int run(RunContext& context) = 0;
};

/// What `hnas evaluate` runs: one architecture and its evaluation.
struct EvaluateOptions {
  arch::Genome genome;
  train::EvaluationOptions evaluation;
};

/// Trains one architecture and prints its metrics: on one rank, or data-parallel over
/// every rank of the job (the global batch split across them). Keeps no run directory.
std::unique_ptr<Stage> make_evaluate_stage(EvaluateOptions options);

// The stages below take `own`: the job options of their own command. Its effective
// configuration is what the stage records and, on resume, compares; under hnas run it
// holds only that stage's keys, so that a pipeline resumes a search (or pre-training)
// started by the stage's own command and back.

/// The distributed search (search/search_job.hpp) over the job's world.
std::unique_ptr<Stage> make_search_stage(search::SearchOptions options, JobOptions own);

/// The Aggregator over the run directory's search (aggregate/aggregate_stage.hpp).
std::unique_ptr<Stage> make_aggregate_stage(aggregate::AggregateOptions options, JobOptions own);

/// The Extrapolator (extrapolate/extrapolate_stage.hpp): keeps /extrapolate when the job
/// has a run directory, else only prints.
std::unique_ptr<Stage> make_extrapolate_stage(extrapolate::ExtrapolateOptions options, JobOptions own);

/// Pre-training of the winner(s) and the baseline (pretrain/pretrain.hpp).
std::unique_ptr<Stage> make_pretrain_stage(pretrain::PretrainOptions options, JobOptions own);

/// Text from a checkpoint with a KV cache (generate/generate.hpp). Keeps no run directory.
std::unique_ptr<Stage> make_generate_stage(generate::GenerateOptions options);

/// hnas run's inference stage: hnas generate --run-dir (every pre-trained model timed,
/// /inference written), skipped while /inference was measured on the models of /pretrain.
std::unique_ptr<Stage> make_inference_stage(generate::GenerateOptions options);

/// hnas run's last stage: /summary, every pre-trained model against the baseline (layers,
/// A/M counts, parameters, validation loss, tokens/s, MFU, prefill and decode latency,
/// KV-cache bytes per token, and the ratios), printed by rank 0. Always rebuilt.
std::unique_ptr<Stage> make_summary_stage();

/// Runs the stages in order, skipping complete ones, until one returns non-zero (a stop:
/// the rerun continues there); a stop signal between two stages returns kExitResumable
/// before the next. Returns the last exit code. Collective.
int run_stages(RunContext& context, const std::vector<std::unique_ptr<Stage>>& stages);

}  // namespace hnas::pipeline
