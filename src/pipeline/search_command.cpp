// SPDX-License-Identifier: Apache-2.0
#include "hnas/pipeline/search_command.hpp"

#include <torch/torch.h>
#include <torch/version.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/log.hpp"
#include "hnas/core/signals.hpp"
#include "hnas/data/token_dataset.hpp"
#include "hnas/dist/communicator.hpp"
#include "hnas/dist/gradient_reducer.hpp"
#include "hnas/io/h5.hpp"
#include "hnas/pipeline/candidate_evaluation.hpp"
#include "hnas/pipeline/evaluate_command.hpp"
#include "hnas/search/statistics.hpp"
#include "hnas/train/throughput.hpp"
#include "hnas/version.hpp"

namespace hnas::pipeline {
namespace {

using Clock = std::chrono::steady_clock;

// Message tags of the work queue between rank 0 and the team leaders.
enum Tag : int { kTagRequest = 101, kTagAssignment = 102, kTagStopNotice = 103 };

enum class AssignmentKind : int32_t { Evaluate = 0, Finish = 1, Stop = 2 };

struct Assignment {
  AssignmentKind kind = AssignmentKind::Finish;
  EvaluationRequest request;
};

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

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// The configuration a resumed search must share with the one that started it, one
// "[section] key = value" per line: every key except those a later job may change (the
// [run] section, the team size, the results-file write budget).
std::string search_defining_config(const std::string& ini) {
  std::istringstream in(ini);
  std::string out, section;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (line.front() == '[') {
      section = line;
      continue;
    }
    const bool free_to_change =
        section == "[run]" || (section == "[search]" &&
                               (line.rfind("ranks_per_candidate", 0) == 0 || line.rfind("results_overhead", 0) == 0));
    if (!free_to_change) out += (section.empty() ? "" : section + " ") + line + "\n";
  }
  return out;
}

std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  while (true) {
    const bool more_a = static_cast<bool>(std::getline(sa, la));
    const bool more_b = static_cast<bool>(std::getline(sb, lb));
    if (!more_a && !more_b) return "";
    if (!more_a) la = "(nothing)";
    if (!more_b) lb = "(nothing)";
    if (la != lb) return "run directory has \"" + la + "\", this run has \"" + lb + "\"";
  }
}

// Rank 0's side of the search: the strategy, the record, the queue of work and the
// leaders waiting for it.
class Coordinator {
 public:
  Coordinator(const cli::SearchOptions& options, std::unique_ptr<search::Strategy> strategy, SearchRecord record,
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

  bool stopping() const { return stopping_; }
  const SearchRecord& record() const { return record_; }

  /// The next evaluation for `team`, or nullopt (nothing can start now, or stopping).
  std::optional<Assignment> next(int team) {
    if (stopping_) return std::nullopt;
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
    running_[team] = a.request.candidate_id;
    return a;
  }

  /// Records a finished evaluation (any team).
  void complete(const CandidateResult& result) {
    running_.erase(result.team);
    if (result.status == "stopped") {  // not an outcome: it runs again on resume
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
  void poll() {
    while (auto message = world_.try_receive(MPI_ANY_SOURCE, kTagRequest)) {
      dist::MessageReader reader(message->bytes);
      if (reader.get<int32_t>() != 0) complete(deserialize_result(reader.get_string()));
      waiting_.push_back(message->source);
    }
    if (stop_requested()) begin_stop();
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      const int leader = *it, team = leader / team_size_;
      std::optional<Assignment> assignment = next(team);
      if (!assignment && (stopping_ || all_done())) {
        assignment = Assignment{stopping_ ? AssignmentKind::Stop : AssignmentKind::Finish, {}};
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

  void begin_stop() {
    if (stopping_) return;
    stopping_ = true;
    log::info("search: stop requested; teams stop at their next step, then the state is saved");
    for (const auto& [team, id] : running_)
      if (team != 0) world_.send(std::string(1, '\0'), team * team_size_, kTagStopNotice);
  }

  /// Nothing left to propose, queue and teams idle.
  bool all_done() const { return requeue_.empty() && running_.empty() && strategy_->done(); }
  /// Every other leader has been told to finish or stop.
  bool leaders_released() const { return leaders_.empty(); }

  void finish() {
    record_.set_status(stopping_ ? "stopped" : "completed");
    report_rank_correlations();
    save();
    const double wall = std::chrono::duration<double>(Clock::now() - start_).count();
    log::info(
        log::format("search %s: %zu evaluations in %s; results.h5 written %ld times, %.3f s = %.3f%% of wall time",
                    stopping_ ? "stopped" : "complete", record_.results().size(), log::format_duration(wall).c_str(),
                    static_cast<long>(saves_), save_seconds_, 100.0 * save_seconds_ / std::max(wall, 1e-9)));
    if (const auto* best = best_result())
      log::info(log::format("best: %s objective %.4f (candidate %ld)", best->arch.c_str(), best->objective,
                            static_cast<long>(best->candidate_id)));
  }

 private:
  // Replays the recorded event log on the fresh strategy: its state (observations, RNG,
  // rungs, stages) becomes what it was; proposals without an outcome run again.
  void replay() {
    for (const auto& e : record_.events()) {
      if (e.kind == SearchEvent::Kind::Propose) {
        const auto p = strategy_->propose();
        HNAS_CHECK(p && p->genome == e.proposal.genome && p->rung == e.proposal.rung, InputError,
                   results_path_ << ": the recorded search does not replay (candidate " << e.candidate_id << " was "
                                 << e.proposal.genome.to_string() << ", the strategy now proposes "
                                 << (p ? p->genome.to_string() : std::string("nothing"))
                                 << "); was it written by another hnas version? Use a new run directory.");
        pending_[e.candidate_id] = *p;
        next_id_ = std::max(next_id_, e.candidate_id + 1);
      } else {
        strategy_->observe(pending_.at(e.candidate_id), e.outcome);
        pending_.erase(e.candidate_id);
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
  const CandidateResult* best_result() const {
    const CandidateResult* best = nullptr;
    const auto level = [](const CandidateResult& r) { return std::make_pair(r.rung, r.stage); };
    for (const auto& r : record_.results())
      if (r.valid && (!best || level(r) > level(*best) || (level(r) == level(*best) && r.objective > best->objective)))
        best = &r;
    return best;
  }

  void report(const CandidateResult& r) {
    const auto* best = best_result();
    const int64_t proposed = next_id_;
    const int64_t remaining =
        std::max<int64_t>(0, options_.strategy.max_evaluations - proposed) + static_cast<int64_t>(pending_.size());
    const double per_evaluation = evaluation_seconds_ / static_cast<double>(record_.results().size());
    const double teams = static_cast<double>(world_.size() / team_size_);
    log::info(log::format("search %zu done | #%ld %s rung %d | objective %.4f | %s | %.1fs team %d | best %.4f %s | "
                          "ETA %s",
                          record_.results().size(), static_cast<long>(r.candidate_id), r.arch.c_str(), r.rung,
                          r.objective, r.status.c_str(), r.seconds, r.team, best ? best->objective : NAN,
                          best ? best->arch.c_str() : "-",
                          log::format_duration(per_evaluation * static_cast<double>(remaining) / teams).c_str()) +
              (r.error.empty() ? "" : " | " + r.error));
  }

  // Rewrites results.h5 when the time since the last write is long enough to keep writes
  // below options.results_overhead of the wall time.
  void maybe_save() {
    const double since = std::chrono::duration<double>(Clock::now() - last_save_end_).count();
    if (since * options_.results_overhead >= last_save_seconds_) save();
  }

  void save() {
    const auto start = Clock::now();
    record_.save(results_path_);
    last_save_end_ = Clock::now();
    last_save_seconds_ = std::chrono::duration<double>(last_save_end_ - start).count();
    save_seconds_ += last_save_seconds_;
    ++saves_;
  }

  // Spearman's rho between consecutive rungs over the architectures evaluated at both.
  void report_rank_correlations() {
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
      log::info(log::format("rank correlation between rungs %d and %d: Spearman %.3f over %zu candidates", rung,
                            rung + 1, rho, low.size()));
    }
  }

  const cli::SearchOptions& options_;
  std::unique_ptr<search::Strategy> strategy_;
  SearchRecord record_;
  std::string results_path_;
  const dist::Communicator& world_;
  int team_size_;
  Clock::time_point start_;

  std::map<int64_t, search::Proposal> pending_;  // proposed, no outcome yet
  std::deque<int64_t> requeue_;                  // pending but not running (after resume or a stop)
  std::map<int, int64_t> running_;               // team -> candidate
  std::vector<int> waiting_;                     // leaders waiting for an assignment
  std::set<int> leaders_;                        // leaders not yet released
  int64_t next_id_ = 0;
  bool stopping_ = false;
  double evaluation_seconds_ = 0;

  Clock::time_point last_save_end_;
  double last_save_seconds_ = 0, save_seconds_ = 0;
  int64_t saves_ = 0;
};

struct Team {
  dist::Communicator comm;
  int index = 0;
  std::unique_ptr<dist::GradientReducer> reducer;  // null for one-rank teams
};

CandidateResult run_assignment(const cli::SearchOptions& options, const Assignment& a, Team& team,
                               const std::function<bool()>& should_stop) {
  const FaultInjection faults{options.diverge_arch, options.fail_arch};
  return evaluate_candidate(options.evaluation, a.request, team.reducer.get(), should_stop, faults);
}

// Leader of team 0 and coordinator: serves the other leaders between its own steps.
AssignmentKind coordinate(const cli::SearchOptions& options, Coordinator& coordinator, Team& team) {
  const auto should_stop = [&] {
    coordinator.poll();
    return coordinator.stopping();
  };
  while (true) {
    coordinator.poll();
    if (auto a = coordinator.next(0)) {
      std::string bytes = serialize(*a);
      team.comm.broadcast_string(bytes, 0);
      coordinator.complete(run_assignment(options, *a, team, should_stop));
      continue;
    }
    if ((coordinator.stopping() || coordinator.all_done()) && coordinator.leaders_released()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const Assignment last{coordinator.stopping() ? AssignmentKind::Stop : AssignmentKind::Finish, {}};
  std::string bytes = serialize(last);
  team.comm.broadcast_string(bytes, 0);
  return last.kind;
}

// Leader of another team: asks rank 0 for work, passing on its last result.
AssignmentKind lead(const cli::SearchOptions& options, const dist::Communicator& world, Team& team) {
  const auto should_stop = [&] { return stop_requested() || world.try_receive(0, kTagStopNotice).has_value(); };
  std::optional<CandidateResult> last;
  while (true) {
    dist::MessageWriter request;
    request.put<int32_t>(last.has_value());
    if (last) request.put_string(serialize(*last));
    world.send(request.bytes(), 0, kTagRequest);
    std::string bytes = world.receive(0, kTagAssignment).bytes;
    team.comm.broadcast_string(bytes, 0);
    const auto a = deserialize_assignment(bytes);
    if (a.kind != AssignmentKind::Evaluate) {
      while (world.try_receive(0, kTagStopNotice)) {
      }
      return a.kind;
    }
    last = run_assignment(options, a, team, should_stop);
  }
}

// Other team members: follow the leader.
AssignmentKind follow(const cli::SearchOptions& options, Team& team) {
  const auto should_stop = [] { return stop_requested(); };
  while (true) {
    std::string bytes;
    team.comm.broadcast_string(bytes, 0);
    const auto a = deserialize_assignment(bytes);
    if (a.kind != AssignmentKind::Evaluate) return a.kind;
    run_assignment(options, a, team, should_stop);
  }
}

Provenance make_provenance(const cli::SearchOptions& o, const dist::Communicator& world) {
  Provenance p;
  p.config = o.effective_ini;
  p.hnas_version = kVersion;
  p.git_revision = kGitRevision;
  p.torch_version = TORCH_VERSION;
  p.mpi_version = dist::mpi_library_version();
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  p.hdf5_version = log::format("%u.%u.%u", major, minor, release);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  p.hostname = host;
  p.started_utc = utc_now();
  p.world_size = world.size();
  p.ranks_per_candidate = o.ranks_per_candidate;
  p.teams = world.size() / o.ranks_per_candidate;
  p.seed = static_cast<int64_t>(o.strategy.seed);
  p.strategy = search::strategy_name(o.strategy.kind);
  return p;
}

// Validates everything a search needs before any work starts; rank 0 also prepares the
// run directory and loads a previous record. Returns the record (rank 0) and whether the
// search already completed.
struct Startup {
  std::unique_ptr<search::Strategy> strategy;
  std::optional<SearchRecord> record;
  bool already_complete = false;
};

Startup start_up(const cli::SearchOptions& o, const dist::Communicator& world) {
  Startup s;
  dist::agree_on_errors(world, [&] {
    HNAS_CHECK(world.size() % o.ranks_per_candidate == 0, ConfigError,
               "search.ranks_per_candidate = " << o.ranks_per_candidate << " does not divide the " << world.size()
                                               << " ranks of this job; use a multiple of it");
    HNAS_CHECK(o.evaluation.on_tokens || o.evaluation.mad.batch_size >= o.ranks_per_candidate, ConfigError,
               "mad.batch_size = " << o.evaluation.mad.batch_size << " is smaller than search.ranks_per_candidate");
    HNAS_CHECK(
        !o.evaluation.on_tokens || o.evaluation.tokens.batch_size >= o.ranks_per_candidate, ConfigError,
        "tokens.batch_size = " << o.evaluation.tokens.batch_size << " is smaller than search.ranks_per_candidate");
    auto strategy_options = o.strategy;
    strategy_options.seconds_per_evaluation =
        estimate_evaluation_seconds(o.evaluation, o.strategy.space.num_layers,
                                    o.evaluation.on_gpu ? 0 : 0.5 * train::measure_cpu_sgemm_flops(512, 3));
    s.strategy = search::make_strategy(strategy_options);
    if (o.evaluation.on_tokens) {  // every rank reads the shards: check them on every rank
      std::vector<std::string> specs = o.evaluation.tokens.train_paths;
      specs.insert(specs.end(), o.evaluation.tokens.valid_paths.begin(), o.evaluation.tokens.valid_paths.end());
      data::TokenDataset(specs, o.evaluation.tokens.vocab_size);
    }
    if (world.rank() != 0) return;
    std::error_code error;
    std::filesystem::create_directories(o.run_dir, error);
    HNAS_CHECK(!error, InputError, "cannot create run directory " << o.run_dir << ": " << error.message());
    const std::string path = o.run_dir + "/results.h5";
    if (std::filesystem::exists(path)) {
      auto record = SearchRecord::load(path);
      const auto difference =
          first_difference(search_defining_config(record.provenance().config), search_defining_config(o.effective_ini));
      HNAS_CHECK(difference.empty(), ConfigError,
                 o.run_dir << " holds a search with another configuration (" << difference
                           << "); rerun with the same configuration to resume, or use a new --run-dir");
      s.already_complete = record.status() == "completed";
      auto provenance = make_provenance(o, world);
      provenance.started_utc = record.provenance().started_utc;
      record.provenance() = provenance;
      s.record = std::move(record);
    } else {
      s.record.emplace(objective_task_names(o.evaluation), make_provenance(o, world));
      if (!o.dry_run) s.record->save(path);  // proves the directory is writable before any work starts
    }
  });
  int64_t complete = s.already_complete;
  world.broadcast(&complete, sizeof complete, 0);
  s.already_complete = complete != 0;
  return s;
}

void print_plan(const cli::SearchOptions& o, const dist::Communicator& world) {
  const auto& st = o.strategy;
  const search::SearchSpace space(st.space);
  const auto feasible = space.feasible_count();
  log::info(log::format(
      "hnas search: strategy %s, %ld layers of %zu primitives (%s candidates), budget %ld, seed %lu",
      search::strategy_name(st.kind), static_cast<long>(st.space.num_layers), st.space.primitives.size(),
      feasible ? std::to_string(*feasible).c_str() : log::format("%.3g", space.unconstrained_size()).c_str(),
      static_cast<long>(st.max_evaluations), static_cast<unsigned long>(st.seed)));
  log::info(log::format("%d ranks in %d teams of %ld; %d threads per rank; objective %s; run directory %s",
                        world.size(), static_cast<int>(world.size() / o.ranks_per_candidate),
                        static_cast<long>(o.ranks_per_candidate), at::get_num_threads(),
                        o.evaluation.on_tokens ? "token validation loss" : "MAD mean accuracy", o.run_dir.c_str()));
  std::istringstream config(o.effective_ini);
  log::info("effective configuration:");
  for (std::string line; std::getline(config, line);)
    if (!line.empty()) log::info("  " + line);
}

// run.device = cuda: this rank's GPU (node-local rank modulo the visible GPUs), else -1.
// The models of this rank's evaluations go there. Collective (agrees on errors).
int choose_gpu(cli::SearchOptions& o, const dist::Communicator& world) {
  int gpu = -1;
  const auto node = world.split_node_local();
  dist::agree_on_errors(world, [&] {
    if (!o.evaluation.on_gpu) return;
    HNAS_CHECK(torch::cuda::is_available(), ConfigError,
               "run.device = cuda, but LibTorch sees no CUDA device (a CPU build of LibTorch, or no GPU here)");
    HNAS_CHECK(dist::nccl_built(), ConfigError, "run.device = cuda needs NCCL: rebuild with -DHNAS_WITH_NCCL=ON");
    gpu = node.rank() % static_cast<int>(torch::cuda::device_count());
    o.evaluation.mad.trainer.device = o.evaluation.tokens.trainer.device = torch::Device(torch::kCUDA, gpu);
  });
  return gpu;
}

int threads_per_rank(int requested, const dist::Communicator& world) {
  if (requested > 0 || std::getenv("SLURM_CPUS_PER_TASK")) return resolve_threads(requested);
  const auto node = world.split_node_local();
  return std::max(1, resolve_threads(0) / node.size());
}

}  // namespace

int run_search(const cli::SearchOptions& search_options) {
  const auto world = dist::Communicator::world();
  log::set_rank(world.rank(), world.rank() == 0);
  train::set_compute_threads(threads_per_rank(search_options.evaluation.threads, world));
  auto options = search_options;
  const int gpu = choose_gpu(options, world);
  auto startup = start_up(options, world);
  print_plan(options, world);
  if (startup.already_complete) {
    log::info("search: " + options.run_dir + "/results.h5 is complete; nothing to do");
    return kExitOk;
  }
  if (options.dry_run) return kExitOk;

  const int team_size = static_cast<int>(options.ranks_per_candidate);
  Team team;
  team.index = world.rank() / team_size;
  team.comm = world.split(team.index, world.rank());
  if (gpu >= 0)  // every CUDA team reduces over NCCL, a one-rank team too (cheap, and it tests the path)
    team.reducer = dist::make_nccl_reducer(team.comm, gpu, options.nccl_timeout);
  else if (team_size > 1)
    team.reducer = dist::make_mpi_reducer(team.comm);

  AssignmentKind end;
  std::optional<Coordinator> coordinator;
  if (world.rank() == 0) {
    coordinator.emplace(options, std::move(startup.strategy), std::move(*startup.record),
                        options.run_dir + "/results.h5", world, team_size);
    end = coordinate(options, *coordinator, team);
    coordinator->finish();
  } else if (team.comm.rank() == 0) {
    end = lead(options, world, team);
  } else {
    end = follow(options, team);
  }
  world.barrier();  // results.h5 is durable before any rank exits
  if (end == AssignmentKind::Stop) {
    log::info("search stopped early; its state is saved. Rerun the same command to resume (exit code 75).");
    return kExitResumable;
  }
  return kExitOk;
}

}  // namespace hnas::pipeline
