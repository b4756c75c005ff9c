// SPDX-License-Identifier: Apache-2.0
#include "hnas/search/search_job.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include "coordinator.hpp"
#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/log.hpp"
#include "hnas/core/signals.hpp"
#include "hnas/data/shard_inputs.hpp"
#include "hnas/data/token_dataset.hpp"
#include "hnas/dist/communicator.hpp"
#include "hnas/dist/gradient_reducer.hpp"
#include "hnas/io/h5.hpp"
#include "hnas/search/candidate_evaluation.hpp"
#include "hnas/train/throughput.hpp"

namespace hnas::search {
namespace {

using Clock = std::chrono::steady_clock;

// "[section] key = value" lines as (section.key, value) pairs, in order.
std::vector<std::pair<std::string, std::string>> ini_entries(const std::string& ini) {
  std::vector<std::pair<std::string, std::string>> entries;
  std::istringstream in(ini);
  std::string section;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (line.front() == '[') {
      section = line.substr(1, line.find(']') - 1);
      continue;
    }
    const auto equals = line.find(" = ");
    const std::string name = line.substr(0, std::min(line.find(' '), equals));
    const std::string value = equals == std::string::npos ? "" : line.substr(equals + 3);
    entries.emplace_back(section.empty() ? name : section + "." + name, value);
  }
  return entries;
}

// A value as a comparable text: list items split on commas or spaces, numbers in one
// format (so "5e-4" and "0.0005", or "a b" and "a, b", are the same setting).
std::string canonical_value(const std::string& value) {
  std::string out, item;
  const auto flush = [&] {
    if (item.empty()) return;
    char* end = nullptr;
    const double number = std::strtod(item.c_str(), &end);
    out += (out.empty() ? "" : ",") + (end != nullptr && *end == '\0' ? log::format("%.10g", number) : item);
    item.clear();
  };
  for (char c : value + " ") {
    if (c == ',' || c == ' ' || c == '\t')
      flush();
    else
      item += c;
  }
  return out;
}

// The first key whose value differs between the recorded configuration and this job's,
// described for the refusal; "" when they define the same search. Keys a resumed job may
// change are skipped; a key the record lacks (written by an older hnas) matches its
// default; a key this hnas no longer reads cannot matter.
std::string first_difference(const std::string& recorded_ini, const std::string& current_ini, const SearchJob& job) {
  std::map<std::string, std::string> recorded;
  for (auto& [key, value] : ini_entries(recorded_ini)) recorded[key] = value;
  const auto& free = job.keys_free_on_resume;
  for (const auto& [key, value] : ini_entries(current_ini)) {
    if (std::find(free.begin(), free.end(), key) != free.end()) continue;
    const auto it = recorded.find(key);
    const auto default_value = job.key_defaults.find(key);
    const std::string before = it != recorded.end()                      ? it->second
                               : default_value != job.key_defaults.end() ? default_value->second
                                                                         : "";
    if (canonical_value(before) != canonical_value(value))
      return "run directory has " + key + " = " + (it != recorded.end() ? before : before + " (the default)") +
             ", this run has " + key + " = " + value;
  }
  return "";
}

struct Team {
  dist::Communicator comm;
  int index = 0;
  std::unique_ptr<dist::GradientReducer> reducer;  // null for one-rank CPU teams
  torch::Device device = torch::kCPU;
};

CandidateResult run_assignment(const SearchOptions& options, const Assignment& a, Team& team,
                               const std::function<bool()>& should_stop) {
  const train::TrainingContext context{team.reducer.get(), should_stop, team.device};
  return evaluate_candidate(options.evaluation, a.request, context, options.faults);
}

// Leader of team 0 and coordinator: serves the other leaders between its own steps.
AssignmentKind coordinate(const SearchOptions& options, Coordinator& coordinator, Team& team) {
  // A coordinator failure inside the hook (say, results.h5 cannot be written) must not pass
  // for a failure of the candidate being trained: the hook stops the training (its team
  // agrees on the step), and the error is raised again once the team is out of it.
  std::exception_ptr coordinator_failure;
  const auto should_stop = [&] {
    if (coordinator_failure) return true;
    try {
      coordinator.poll();
    } catch (...) {
      coordinator_failure = std::current_exception();
      return true;
    }
    return coordinator.stopping();
  };
  while (true) {
    coordinator.poll();
    if (auto a = coordinator.next(0)) {
      std::string bytes = serialize(*a);
      team.comm.broadcast_string(bytes, 0);
      auto result = run_assignment(options, *a, team, should_stop);
      if (coordinator_failure) std::rethrow_exception(coordinator_failure);
      coordinator.complete(result);
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
AssignmentKind lead(const SearchOptions& options, const dist::Communicator& world, Team& team) {
  // A stop relayed by rank 0 counts as this rank's own: the rest of the candidate's
  // training runs end at once too.
  const auto should_stop = [&] {
    if (world.try_receive(0, kTagStopNotice)) request_stop();
    return stop_requested();
  };
  std::optional<CandidateResult> last;
  while (true) {
    dist::MessageWriter request;
    request.put<int32_t>(last.has_value());
    if (last) request.put_string(serialize(*last));
    std::string bytes;
    {
      // Waiting for work is long by design: rank 0 may be training its own candidate.
      dist::ScopedStallTimeout idle(0);
      world.send(request.bytes(), 0, kTagRequest);
      bytes = world.receive(0, kTagAssignment).bytes;
      team.comm.broadcast_string(bytes, 0);
    }
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
AssignmentKind follow(const SearchOptions& options, Team& team) {
  const auto should_stop = [] { return stop_requested(); };
  while (true) {
    std::string bytes;
    {
      dist::ScopedStallTimeout idle(0);  // the leader waits for work as long as it takes
      team.comm.broadcast_string(bytes, 0);
    }
    const auto a = deserialize_assignment(bytes);
    if (a.kind != AssignmentKind::Evaluate) return a.kind;
    run_assignment(options, a, team, should_stop);
  }
}

// The job's provenance with the search's own figures.
io::Provenance search_provenance(const SearchOptions& o, const SearchJob& job) {
  auto p = job.provenance;
  p.ranks_per_candidate = o.ranks_per_candidate;
  p.teams = job.world->size() / o.ranks_per_candidate;
  p.seed = static_cast<int64_t>(o.strategy.seed);
  p.strategy = strategy_name(o.strategy.kind);
  return p;
}

// Validates everything a search needs before any work starts; rank 0 also prepares the
// run directory, loads a previous record and replays it into the strategy (its
// Coordinator), so that every one of these problems ends all ranks alike. Collective.
struct Startup {
  std::unique_ptr<Coordinator> coordinator;  // rank 0, when there is work to do
  bool already_complete = false;
};

// Throws ConfigError unless `record` was started with this configuration (the keys a
// resumed job may change aside) on the same input data.
void verify_same_search(const SearchRecord& record, const io::Provenance& current, const SearchJob& job) {
  const auto& recorded = record.provenance();
  const auto difference = first_difference(recorded.config, current.config, job);
  HNAS_CHECK(difference.empty(), ConfigError,
             job.run_dir << " holds a search with another configuration (" << difference
                         << "); rerun with the same configuration to resume, or use a new --run-dir");
  if (recorded.data_fingerprint.empty() && !current.data_fingerprint.empty()) {
    log::warn(job.run_dir +
              "/results.h5 has no fingerprint of its input data (written by an older hnas); "
              "resuming on the data given now, and recording its fingerprint");
    return;
  }
  HNAS_CHECK(recorded.data_fingerprint == current.data_fingerprint, ConfigError,
             job.run_dir << " holds a search on other input data ("
                         << data::describe_fingerprint_change(recorded.data_fingerprint, current.data_fingerprint)
                         << "); resume on the same data, or use a new --run-dir");
}

io::Provenance current_provenance(const SearchOptions& o, const SearchJob& job) {
  auto provenance = search_provenance(o, job);
  const auto& tokens = o.evaluation.tokens;
  if (o.evaluation.objective == train::Objective::Tokens)
    provenance.data_fingerprint =
        data::fingerprint_shards(data::all_shard_specs(tokens.train_paths, tokens.valid_paths));
  return provenance;
}

Startup start_up(const SearchOptions& o, const SearchJob& job) {
  const auto& world = *job.world;
  const auto& evaluation = o.evaluation;
  const bool on_tokens = evaluation.objective == train::Objective::Tokens;
  Startup s;
  const int ranks = job.plan_ranks > 0 ? job.plan_ranks : world.size();
  dist::agree_on_errors(world, [&] {
    HNAS_CHECK(ranks % o.ranks_per_candidate == 0, ConfigError,
               "search.ranks_per_candidate = " << o.ranks_per_candidate << " does not divide the " << ranks
                                               << " ranks of this job; use a multiple of it");
    HNAS_CHECK(on_tokens || evaluation.mad.batch_size >= o.ranks_per_candidate, ConfigError,
               "mad.batch_size = " << evaluation.mad.batch_size << " is smaller than search.ranks_per_candidate");
    HNAS_CHECK(!on_tokens || evaluation.tokens.batch_size >= o.ranks_per_candidate, ConfigError,
               "tokens.batch_size = " << evaluation.tokens.batch_size << " is smaller than search.ranks_per_candidate");
    auto strategy_options = o.strategy;
    strategy_options.seconds_per_evaluation = estimate_evaluation_seconds(
        evaluation, o.strategy.space.num_layers, job.gpu >= 0 ? 0 : 0.5 * train::measure_cpu_sgemm_flops(512, 3));
    auto strategy = make_strategy(strategy_options);
    // The largest candidates (the deepest, all of one primitive) must fit every rank.
    const auto depth = std::max(o.strategy.space.num_layers, o.strategy.target_layers);
    for (const auto primitive : o.strategy.space.primitives)
      train::check_memory_fits(arch::Genome(std::vector<arch::Primitive>(static_cast<size_t>(depth), primitive)),
                               evaluation, static_cast<int>(o.ranks_per_candidate), job.ranks_on_node);
    if (on_tokens)  // every rank reads the shards: check them on every rank
      data::TokenDataset(data::all_shard_specs(evaluation.tokens.train_paths, evaluation.tokens.valid_paths),
                         evaluation.tokens.vocab_size);
    auto provenance = current_provenance(o, job);
    HNAS_CHECK(job.gpu < 0 || dist::nccl_built(), ConfigError,
               "run.device = cuda needs NCCL for the search's teams: rebuild with -DHNAS_WITH_NCCL=ON");
    if (world.rank() != 0) return;
    std::error_code missing;
    if (job.dry_run && !std::filesystem::exists(job.run_dir, missing)) return;  // a dry run leaves no trace
    if (job.hold_run_directory) job.hold_run_directory();  // inputs are valid: take the directory now
    const std::string path = job.run_dir + "/results.h5";
    std::optional<SearchRecord> record;
    if (std::filesystem::exists(path, missing) || std::filesystem::is_symlink(path, missing)) {
      record = SearchRecord::load(path);
      verify_same_search(*record, provenance, job);
      const auto& recorded = record->provenance();
      s.already_complete = record->status() == SearchStatus::Completed;
      provenance.started_utc = recorded.started_utc;
      record->provenance() = provenance;
    } else {
      record.emplace(objective_task_names(evaluation), provenance);
    }
    if (s.already_complete || job.dry_run) return;
    // Replays the record and writes results.h5 (which proves the directory writable).
    s.coordinator = std::make_unique<Coordinator>(o, std::move(strategy), std::move(*record), path, world,
                                                  static_cast<int>(o.ranks_per_candidate));
  });
  int64_t complete = s.already_complete;
  world.broadcast(&complete, sizeof complete, 0);
  s.already_complete = complete != 0;
  return s;
}

void print_plan(const SearchOptions& o, const SearchJob& job) {
  const auto& st = o.strategy;
  const SearchSpace space(st.space);
  const auto feasible = space.feasible_count();
  log::info(log::format(
      "hnas search: strategy %s, %ld layers of %zu primitives (%s candidates), budget %ld, seed %lu",
      strategy_name(st.kind), static_cast<long>(st.space.num_layers), st.space.primitives.size(),
      feasible ? std::to_string(*feasible).c_str() : log::format("%.3g", space.unconstrained_size()).c_str(),
      static_cast<long>(st.max_evaluations), static_cast<unsigned long>(st.seed)));
  const int world_size = job.plan_ranks > 0 ? job.plan_ranks : job.world->size();
  const int teams = static_cast<int>(world_size / o.ranks_per_candidate);
  log::info(log::format("%d ranks in %d teams of %ld; %d threads per rank; objective %s; run directory %s", world_size,
                        teams, static_cast<long>(o.ranks_per_candidate), at::get_num_threads(),
                        train::objective_name(o.evaluation.objective), job.run_dir.c_str()));
  if (!job.dry_run) return;
  // The strategy's own estimate: half the sgemm peak on the CPU; none for GPUs.
  const double flops = estimate_evaluation_flops(o.evaluation, st.space.num_layers);
  const double per_team = job.gpu >= 0 || job.cuda ? 0
                                                   : 0.5 * train::measure_cpu_sgemm_flops(512, 3) *
                                                         static_cast<double>(o.ranks_per_candidate);
  const double budget = static_cast<double>(st.max_evaluations) * flops;
  log::info(
      log::format("plan: an evaluation at full fidelity trains about %.4g FLOPs (a %ld-layer model, half "
                  "attention); the budget of %ld evaluations at most %.4g FLOPs%s",
                  flops, static_cast<long>(st.space.num_layers), static_cast<long>(st.max_evaluations), budget,
                  per_team > 0 ? log::format(", about %s on %d teams at half this CPU's measured sgemm peak",
                                             log::format_duration(budget / (per_team * teams)).c_str(), teams)
                                     .c_str()
                               : ""));
}

}  // namespace

int run_search(const SearchOptions& options, const SearchJob& job) {
  const auto& world = *job.world;
  auto startup = start_up(options, job);
  print_plan(options, job);
  if (startup.already_complete) {
    log::info("search: " + job.run_dir + "/results.h5 is complete; nothing to do");
    return kExitOk;
  }
  if (job.dry_run) return kExitOk;

  const int team_size = static_cast<int>(options.ranks_per_candidate);
  Team team;
  team.index = world.rank() / team_size;
  team.comm = world.split(team.index, world.rank());
  if (job.gpu >= 0) {  // every CUDA team reduces over NCCL, a one-rank team too (cheap, and it tests the path)
    team.reducer = dist::make_nccl_reducer(team.comm, job.gpu, job.nccl_timeout);
    team.device = torch::Device(torch::kCUDA, job.gpu);
  } else if (team_size > 1)
    team.reducer = dist::make_mpi_reducer(team.comm);
  AssignmentKind end;
  {
    // While the teams train, a rank that waits longer than this for a peer ends the job
    // (the waits for work are exempt); start-up, the final barrier and errors are not timed.
    const dist::ScopedStallTimeout training(job.stall_timeout);
    if (world.rank() == 0) {
      end = coordinate(options, *startup.coordinator, team);
      startup.coordinator->finish();
    } else if (team.comm.rank() == 0) {
      end = lead(options, world, team);
    } else {
      end = follow(options, team);
    }
  }
  world.barrier();  // results.h5 is durable before any rank exits
  if (end == AssignmentKind::Stop) {
    log::info("search stopped early; its state is saved. Rerun the same command to resume (exit code 75).");
    return kExitResumable;
  }
  return kExitOk;
}

bool search_complete(const SearchOptions& options, const SearchJob& job) {
  int64_t complete = 0;
  dist::agree_on_errors(*job.world, [&] {
    const std::string path = job.run_dir + "/results.h5";
    std::error_code missing;
    if (job.world->rank() != 0 || !std::filesystem::exists(path, missing)) return;
    const auto record = SearchRecord::load(path);
    if (record.status() != SearchStatus::Completed) return;
    try {
      verify_same_search(record, current_provenance(options, job), job);
      complete = 1;
    } catch (const ConfigError&) {  // another search: run() refuses it with the reason
    }
  });
  job.world->broadcast(&complete, sizeof complete, 0);
  return complete != 0;
}

}  // namespace hnas::search
