// SPDX-License-Identifier: Apache-2.0
#include "coordinator.hpp"

#include <algorithm>

#include "hnas/core/check.hpp"
#include "hnas/core/deadline.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/log.hpp"
#include "hnas/core/signals.hpp"
#include "hnas/search/statistics.hpp"

namespace hnas::search {

using Clock = std::chrono::steady_clock;

std::string serialize(const Assignment& a) {
  dist::MessageWriter w;
  w.put(a.kind).put(a.request.candidate_id).put(a.request.fidelity).put(a.request.team);
  w.put_string(a.request.proposal.genome.to_string()).put(a.request.proposal.rung).put(a.request.proposal.stage);
  return w.bytes();
}

Assignment deserialize_assignment(const std::string& bytes) {
  dist::MessageReader r(bytes);
  Assignment a;
  a.kind = r.get<AssignmentKind>();
  a.request.candidate_id = r.get<int64_t>();
  a.request.fidelity = r.get<double>();
  a.request.team = r.get<int32_t>();
  const auto arch = r.get_string();
  if (!arch.empty()) a.request.proposal.genome = arch::Genome::parse(arch);
  a.request.proposal.rung = r.get<int>();
  a.request.proposal.stage = r.get<int>();
  return a;
}

Coordinator::Coordinator(const SearchOptions& options, std::unique_ptr<search::Strategy> strategy, SearchRecord record,
                         std::string results_path, const dist::Communicator& world, int team_size)
    : options_(options),
      strategy_(std::move(strategy)),
      record_(std::move(record)),
      results_path_(std::move(results_path)),
      world_(world),
      team_size_(team_size),
      start_(Clock::now()) {
  replay();
  for (int leader = team_size_; leader < world_.size(); leader += team_size_) leaders_.insert(leader);
  save();
}

/// The next evaluation for `team`, or nullopt (nothing can start now, or stopping).
std::optional<Assignment> Coordinator::next(int team) {
  if (stopping()) return std::nullopt;
  Assignment a;
  a.kind = AssignmentKind::Evaluate;
  a.request.team = team;
  if (!requeue_.empty()) {
    a.request.candidate_id = requeue_.front();
    requeue_.pop_front();
  } else {
    auto proposal = strategy_->propose();
    if (!proposal) return std::nullopt;
    a.request.candidate_id = next_id_++;
    pending_[a.request.candidate_id] = *proposal;
    record_.add_event({SearchEvent::Kind::Propose, a.request.candidate_id, *proposal, {}});
  }
  a.request.proposal = pending_.at(a.request.candidate_id);
  a.request.fidelity = strategy_->fidelity(a.request.proposal.rung);
  const double expected = expected_seconds(a.request.proposal.rung);
  if (would_miss_deadline(expected)) {  // it runs on resume, as after a stop
    requeue_.push_front(a.request.candidate_id);
    out_of_time_ = true;
    log::info(
        log::format("search: the next evaluation (about %.1f s) would not end before the deadline less its "
                    "margin (%.1f s left); the running ones finish, then the state is saved",
                    expected, seconds_before_deadline()));
    return std::nullopt;
  }
  running_[team] = a.request.candidate_id;
  return a;
}

/// Records a finished evaluation (any team).
void Coordinator::complete(const CandidateResult& result) {
  running_.erase(result.team);
  if (result.status == CandidateStatus::Stopped) {  // not an outcome: it runs again on resume
    requeue_.push_front(result.candidate_id);
    begin_stop();
    return;
  }
  const auto it = pending_.find(result.candidate_id);
  HNAS_ASSERT(it != pending_.end(), "result for candidate " << result.candidate_id << " that is not pending");
  const search::Outcome outcome{result.objective, result.valid};
  strategy_->observe(it->second, outcome);
  record_.add_event({SearchEvent::Kind::Observe, result.candidate_id, it->second, outcome});
  pending_.erase(it);
  record_.add_result(result);
  evaluation_seconds_ += result.seconds;
  report(result);
  maybe_save();
}

/// Serves waiting team leaders: takes their results and hands out work. Never blocks.
void Coordinator::poll() {
  while (auto message = world_.try_receive(MPI_ANY_SOURCE, kTagRequest)) {
    waiting_.push_back(message->source);  // first: should complete() throw, no leader is forgotten
    dist::MessageReader reader(message->bytes);
    if (reader.get<int32_t>() != 0) complete(deserialize_result(reader.get_string()));
  }
  if (stop_requested()) begin_stop();
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    const int leader = *it, team = leader / team_size_;
    std::optional<Assignment> assignment = next(team);
    if (!assignment && (stopping() || all_done())) {
      assignment = Assignment{stopping() ? AssignmentKind::Stop : AssignmentKind::Finish, {}};
      leaders_.erase(leader);
    }
    if (!assignment) {
      ++it;
      continue;
    }
    world_.send(serialize(*assignment), leader, kTagAssignment);
    it = waiting_.erase(it);
  }
}

void Coordinator::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  log::info(std::string("search: ") +
            (deadline_passed() ? "the deadline less its margin has passed" : "stop requested") +
            "; teams stop at their next step, then the state is saved");
  for (const auto& [team, id] : running_)
    if (team != 0) world_.send(std::string(1, '\0'), team * team_size_, kTagStopNotice);
}

// The mean wall time of the evaluations done at `rung`, else of all done; 0 before any.
double Coordinator::expected_seconds(int rung) const {
  double at_rung = 0, all = 0;
  int64_t n_rung = 0, n_all = 0;
  for (const auto& r : record_.results()) {
    all += r.seconds, ++n_all;
    if (r.rung == rung) at_rung += r.seconds, ++n_rung;
  }
  if (n_rung > 0) return at_rung / static_cast<double>(n_rung);
  return n_all > 0 ? all / static_cast<double>(n_all) : 0;
}

void Coordinator::finish() {
  record_.set_status(stopping() ? SearchStatus::Stopped : SearchStatus::Completed);
  report_rank_correlations();
  save();
  const double wall = std::chrono::duration<double>(Clock::now() - start_).count();
  log::info(log::format("search %s: %zu evaluations in %s; results.h5 written %ld times, %.3f s = %.3f%% of wall time",
                        stopping() ? "stopped" : "complete", record_.results().size(),
                        log::format_duration(wall).c_str(), static_cast<long>(saves_), save_seconds_,
                        100.0 * save_seconds_ / std::max(wall, 1e-9)));
  if (const auto* best = best_result())
    log::info(log::format("best: %s objective %.4f (candidate %ld)", best->arch.c_str(), best->objective,
                          static_cast<long>(best->candidate_id)));
}

// Replays the recorded event log on the fresh strategy: its state (observations, RNG,
// rungs, stages) becomes what it was; proposals without an outcome run again.
void Coordinator::replay() {
  for (const auto& e : record_.events()) {
    if (e.kind == SearchEvent::Kind::Propose) {
      const auto p = strategy_->propose();
      HNAS_CHECK(p && p->genome == e.proposal.genome && p->rung == e.proposal.rung && p->stage == e.proposal.stage,
                 InputError,
                 results_path_ << ": the recorded search does not replay (candidate " << e.candidate_id << " was "
                               << e.proposal.genome.to_string() << ", the strategy now proposes "
                               << (p ? p->genome.to_string() : std::string("nothing"))
                               << "); was it written by another hnas version? Use a new run directory.");
      pending_[e.candidate_id] = *p;
      next_id_ = std::max(next_id_, e.candidate_id + 1);
    } else {
      const auto it = pending_.find(e.candidate_id);
      HNAS_CHECK(it != pending_.end(), InputError,
                 results_path_ << ": event log observes candidate " << e.candidate_id << ", which was not proposed");
      strategy_->observe(it->second, e.outcome);
      pending_.erase(it);
    }
  }
  for (const auto& [id, proposal] : pending_) requeue_.push_back(id);
  if (!record_.events().empty())
    log::info(log::format("search: resumed %s: %zu evaluations done, %zu to run again, strategy %s",
                          results_path_.c_str(), record_.results().size(), requeue_.size(),
                          strategy_->describe().c_str()));
}

// The best valid result at the highest fidelity and the latest incremental stage reached
// (objectives of different fidelities or depths are not comparable).
const CandidateResult* Coordinator::best_result() const {
  const CandidateResult* best = nullptr;
  const auto level = [](const CandidateResult& r) { return std::make_pair(r.rung, r.stage); };
  for (const auto& r : record_.results())
    if (r.valid && (!best || level(r) > level(*best) || (level(r) == level(*best) && r.objective > best->objective)))
      best = &r;
  return best;
}

void Coordinator::report(const CandidateResult& r) {
  const auto* best = best_result();
  const int64_t proposed = next_id_;
  const int64_t remaining =
      std::max<int64_t>(0, options_.strategy.max_evaluations - proposed) + static_cast<int64_t>(pending_.size());
  const double per_evaluation = evaluation_seconds_ / static_cast<double>(record_.results().size());
  const double teams = static_cast<double>(world_.size() / team_size_);
  log::info(log::format("search %zu done | #%ld %s rung %d | objective %.4f | %s | %.1fs team %d | best %.4f %s | "
                        "ETA %s",
                        record_.results().size(), static_cast<long>(r.candidate_id), r.arch.c_str(), r.rung,
                        r.objective, candidate_status_name(r.status), r.seconds, r.team, best ? best->objective : NAN,
                        best ? best->arch.c_str() : "-",
                        log::format_duration(per_evaluation * static_cast<double>(remaining) / teams).c_str()) +
            (r.error.empty() ? "" : " | " + r.error));
}

// Rewrites results.h5 when the time since the last write is long enough to keep writes
// below options.results_overhead of the wall time.
void Coordinator::maybe_save() {
  const double since = std::chrono::duration<double>(Clock::now() - last_save_end_).count();
  if (since * options_.results_overhead >= last_save_seconds_) save();
}

void Coordinator::save() {
  const auto start = Clock::now();
  record_.save(results_path_);
  last_save_end_ = Clock::now();
  last_save_seconds_ = std::chrono::duration<double>(last_save_end_ - start).count();
  save_seconds_ += last_save_seconds_;
  ++saves_;
}

// Spearman's rho between consecutive rungs over the architectures evaluated at both.
void Coordinator::report_rank_correlations() {
  std::map<int, std::map<std::string, double>> by_rung;
  for (const auto& r : record_.results())
    if (r.valid) by_rung[r.rung][r.arch] = r.objective;
  for (const auto& [rung, objectives] : by_rung) {
    const auto next = by_rung.find(rung + 1);
    if (next == by_rung.end()) continue;
    std::vector<double> low, high;
    for (const auto& [id, value] : next->second)
      if (objectives.count(id)) low.push_back(objectives.at(id)), high.push_back(value);
    const double rho = search::spearman_correlation(low, high);
    record_.set_summary(log::format("spearman_rung%d_rung%d", rung, rung + 1), rho);
    log::info(log::format("rank correlation between rungs %d and %d: Spearman %.3f over %zu candidates", rung, rung + 1,
                          rho, low.size()));
  }
}

}  // namespace hnas::search
