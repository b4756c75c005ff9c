// SPDX-License-Identifier: Apache-2.0
// Rank 0's side of `hnas search` and the work-queue protocol between rank 0 and the team
// leaders (internal to search/).
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "hnas/dist/communicator.hpp"
#include "hnas/search/candidate_evaluation.hpp"
#include "hnas/search/search_job.hpp"
#include "hnas/search/search_record.hpp"

namespace hnas::search {

// Message tags of the work queue between rank 0 and the team leaders.
enum Tag : int { kTagRequest = 101, kTagAssignment = 102, kTagStopNotice = 103 };

enum class AssignmentKind : int32_t { Evaluate = 0, Finish = 1, Stop = 2 };

struct Assignment {
  AssignmentKind kind = AssignmentKind::Finish;
  EvaluationRequest request;
};

std::string serialize(const Assignment& assignment);
Assignment deserialize_assignment(const std::string& bytes);

/// Rank 0's side of the search: the strategy, the record, the queue of work and the
/// leaders waiting for it. Lives on rank 0 only; talks to the other team leaders with
/// point-to-point messages (never collectives), so it can serve them between the steps of
/// its own team's training.
class Coordinator {
 public:
  /// Replays `record`'s event log on `strategy` and writes results.h5 once.
  Coordinator(const SearchOptions& options, std::unique_ptr<search::Strategy> strategy, SearchRecord record,
              std::string results_path, const dist::Communicator& world, int team_size);

  /// Stopped by a signal, or out of time before the deadline: no more work is handed out.
  bool stopping() const { return stopping_ || out_of_time_; }
  const SearchRecord& record() const { return record_; }

  /// The next evaluation for `team`, or nullopt (nothing can start now, or stopping).
  std::optional<Assignment> next(int team);

  /// Records a finished evaluation (any team).
  void complete(const CandidateResult& result);

  /// Serves waiting team leaders: takes their results and hands out work. Never blocks.
  void poll();

  /// Stops handing out work and tells every running team to stop at its next step.
  void begin_stop();

  /// Nothing left to propose, queue and teams idle.
  bool all_done() const { return requeue_.empty() && running_.empty() && strategy_->done(); }
  /// Every other leader has been told to finish or stop.
  bool leaders_released() const { return leaders_.empty(); }

  /// Marks the record completed or stopped, reports rank correlations and the best
  /// result, and writes results.h5 one last time.
  void finish();

 private:
  // Replays the recorded event log on the fresh strategy: its state (observations, RNG,
  // rungs, stages) becomes what it was; proposals without an outcome run again.
  void replay();

  // The best valid result at the highest fidelity and the latest incremental stage reached
  // (objectives of different fidelities or depths are not comparable).
  const CandidateResult* best_result() const;

  void report(const CandidateResult& r);

  // The mean wall time of the evaluations done at `rung`, else of all done; 0 before any.
  double expected_seconds(int rung) const;

  // Rewrites results.h5 when the time since the last write is long enough to keep writes
  // below options.results_overhead of the wall time.
  void maybe_save();

  void save();

  // Spearman's rho between consecutive rungs over the architectures evaluated at both.
  void report_rank_correlations();

  const SearchOptions& options_;
  std::unique_ptr<search::Strategy> strategy_;
  SearchRecord record_;
  std::string results_path_;
  const dist::Communicator& world_;
  int team_size_;
  std::chrono::steady_clock::time_point start_;

  std::map<int64_t, search::Proposal> pending_;  // proposed, no outcome yet
  std::deque<int64_t> requeue_;                  // pending but not running (after resume or a stop)
  std::map<int, int64_t> running_;               // team -> candidate
  std::vector<int> waiting_;                     // leaders waiting for an assignment
  std::set<int> leaders_;                        // leaders not yet released
  int64_t next_id_ = 0;
  bool stopping_ = false;
  bool out_of_time_ = false;  // the next evaluation would not end before the deadline
  double evaluation_seconds_ = 0;

  std::chrono::steady_clock::time_point last_save_end_;
  double last_save_seconds_ = 0, save_seconds_ = 0;
  int64_t saves_ = 0;
};

}  // namespace hnas::search
