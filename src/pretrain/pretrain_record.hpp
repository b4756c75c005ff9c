// SPDX-License-Identifier: Apache-2.0
// /pretrain/<model> and /pretrain/summary of results.h5 (internal to pretrain/): what a
// model's pre-training has done, written by rank 0 at every checkpoint and at the end,
// and whether a model is complete. Rank-local (the file: rank 0 only).
#pragma once

#include <hdf5.h>

#include <cmath>
#include <string>
#include <vector>

#include "hnas/data/token_shard.hpp"
#include "hnas/pretrain/checkpoint.hpp"
#include "hnas/pretrain/pretrain.hpp"

namespace hnas::pretrain {

struct ModelRecord {
  std::string status = "running";  // running, completed, diverged
  double comm_seconds = 0;         // gradient all-reduce time not hidden behind backward, all steps
  int64_t comm_steps = 0;
  int64_t steps = 0, total_steps = 0, tokens = 0;
  double wall_seconds = 0, tokens_per_second = 0, mfu = 0, final_validation_loss = NAN;
  std::vector<TrainPoint> train;
  std::vector<ValidationPoint> validation;
};

/// Replaces /pretrain/<spec.name> with `record` and rebuilds /pretrain/summary from every
/// model's group; the other groups of the file are kept.
void write_model_record(const std::string& results_path, const ModelSpec& spec, const ModelRecord& record,
                        const std::string& fingerprint);

/// The end of a model's record: status (completed unless diverged), final validation
/// loss, mean throughput and MFU over its steps.
void finish_record(ModelRecord& record);

/// The record and its identity fingerprint as bytes (a team leader sends them to world
/// rank 0), and back.
std::string serialize_record(const ModelRecord& record, const std::string& fingerprint);
ModelRecord deserialize_record(const std::string& bytes, std::string& fingerprint);

/// /pretrain/tokenizer: the tokenizer the shards record (vocabulary, fingerprint) and,
/// when hnas_make_shards left them beside the first shard, its PREFIX_tokenizer.txt and
/// .model, so that the run directory says how its text became tokens.
void write_tokenizer_record(const std::string& results_path, const data::ShardTokenizer& tokenizer,
                            const std::string& first_shard);

/// Whether /pretrain/<name> of the open file is finished (completed or diverged) with this
/// identity fingerprint.
bool model_complete(hid_t file, const std::string& name, const std::string& fingerprint);

}  // namespace hnas::pretrain
