// SPDX-License-Identifier: Apache-2.0
// What a search has done so far, as rank 0 holds it, and its durable form in
// DIR/results.h5: one row per evaluation (/search/candidates), every training run and
// loss curve behind them, the strategy's event log (every proposal and every observation
// in order: replaying it restores the strategy on resume) and the provenance of the run.
// Rank 0 alone owns a SearchRecord and writes the file; the file is replaced atomically,
// so h5py can read it while the job runs and after a kill -9 at any moment.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hnas/io/provenance.hpp"
#include "hnas/io/results_table.hpp"
#include "hnas/search/strategy.hpp"
#include "hnas/train/trainer.hpp"

namespace hnas::search {

/// How an evaluation ended. A diverged, failed or out-of-memory candidate is data: it is
/// recorded and the search goes on; a stopped one is run again on resume.
enum class CandidateStatus { Completed, ReachedTarget, Diverged, TimedOut, OutOfMemory, Failed, Stopped };
/// "completed", "reached_target", "diverged", "timed_out", "out_of_memory", "failed", "stopped".
const char* candidate_status_name(CandidateStatus status);
/// The status named `name` (as written by candidate_status_name); throws InputError otherwise.
CandidateStatus parse_candidate_status(const std::string& name);
/// The candidate status a training run's status amounts to.
CandidateStatus candidate_status_of(train::RunStatus status);

/// One training run inside a candidate's evaluation (a MAD setting x grid cell, or the
/// single token run).
struct TrainingRunSummary {
  std::string label;  ///< e.g. "in-context-recall v16 L128 ... lr=0.0005 wd=0"
  double lr = 0;
  double weight_decay = 0;
  train::RunStatus status = train::RunStatus::Completed;
  int64_t steps = 0;
  double accuracy = 0;  ///< best checkpoint's macro accuracy (MAD), 0 for tokens
  double loss = 0;      ///< best checkpoint's loss
  double seconds = 0;
};

struct CurveRow {
  int32_t run = 0;  ///< index into CandidateResult::runs
  int64_t step = 0;
  double loss = 0;
};

/// The outcome of one evaluation, as a team reports it to rank 0.
struct CandidateResult {
  int64_t candidate_id = -1;
  std::string arch;
  int32_t rung = 0;
  int32_t stage = 0;
  double fidelity = 1;
  CandidateStatus status = CandidateStatus::Completed;
  bool valid = false;  ///< the objective is usable
  double objective = NAN;
  std::vector<double> task_scores;  ///< MAD: per task, in the record's task order
  double validation_loss = NAN;     ///< tokens: final validation loss
  int64_t parameters = 0;
  int64_t non_embedding_parameters = 0;
  double flops_per_token = 0;  ///< forward FLOPs per token at the training length
  int64_t steps = 0;
  int64_t tokens = 0;
  double seconds = 0;
  double started_unix = 0;
  double finished_unix = 0;
  int32_t team = 0;
  std::string error;  ///< what went wrong, for status "failed"
  std::vector<TrainingRunSummary> runs;
  std::vector<CurveRow> curve;
};

std::string serialize(const CandidateResult& result);
CandidateResult deserialize_result(const std::string& bytes);

/// The /search/candidates table of `results` (one row per evaluation, a column per MAD
/// task in `task_names` order); later stages store their own evaluations in the same
/// columns so that a reader can put them side by side. Rank-local.
io::Table candidates_table(const std::vector<CandidateResult>& results, const std::vector<std::string>& task_names);

/// One line of the strategy's event log.
struct SearchEvent {
  enum class Kind { Propose, Observe };
  Kind kind = Kind::Propose;
  int64_t candidate_id = -1;
  search::Proposal proposal;
  search::Outcome outcome;  ///< Observe only
};

/// The state of a search as a whole: attribute `status` of /search.
enum class SearchStatus { Running, Stopped, Completed };
const char* search_status_name(SearchStatus status);

class SearchRecord {
 public:
  /// `task_names`: MAD task names (one objective column each); empty for token data.
  SearchRecord(std::vector<std::string> task_names, io::Provenance provenance);

  const std::vector<std::string>& task_names() const { return task_names_; }
  const io::Provenance& provenance() const { return provenance_; }
  io::Provenance& provenance() { return provenance_; }
  const std::vector<CandidateResult>& results() const { return results_; }
  const std::vector<SearchEvent>& events() const { return events_; }

  void add_event(SearchEvent event) { events_.push_back(std::move(event)); }
  void add_result(CandidateResult result) { results_.push_back(std::move(result)); }

  /// Extra scalar figures stored as attributes of /search (e.g. Spearman per rung pair).
  void set_summary(const std::string& name, double value);
  void set_status(SearchStatus status) { status_ = status; }
  SearchStatus status() const { return status_; }

  /// Writes the whole record to `path` atomically (io::write_file_atomically). Rank 0.
  void save(const std::string& path) const;
  /// Reads a record written by save(). Throws InputError naming the file when it is not one.
  static SearchRecord load(const std::string& path);

 private:
  std::vector<std::string> task_names_;
  io::Provenance provenance_;
  std::vector<CandidateResult> results_;
  std::vector<SearchEvent> events_;
  std::vector<std::pair<std::string, double>> summaries_;
  SearchStatus status_ = SearchStatus::Running;
};

}  // namespace hnas::search
