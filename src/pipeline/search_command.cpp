// SPDX-License-Identifier: Apache-2.0
#include "hnas/pipeline/search_command.hpp"

#include <torch/torch.h>
#include <torch/version.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include "coordinator.hpp"
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
#include "hnas/train/throughput.hpp"
#include "hnas/version.hpp"

namespace hnas::pipeline {
namespace {

using Clock = std::chrono::steady_clock;

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

struct Team {
  dist::Communicator comm;
  int index = 0;
  std::unique_ptr<dist::GradientReducer> reducer;  // null for one-rank CPU teams
};

CandidateResult run_assignment(const cli::SearchOptions& options, const Assignment& a, Team& team,
                               const std::function<bool()>& should_stop) {
  const FaultInjection faults{options.diverge_arch, options.fail_arch};
  return evaluate_candidate(options.evaluation, a.request, team.reducer.get(), should_stop, faults);
}

// Leader of team 0 and coordinator: serves the other leaders between its own steps.
AssignmentKind coordinate(const cli::SearchOptions& options, Coordinator& coordinator, Team& team) {
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
AssignmentKind lead(const cli::SearchOptions& options, const dist::Communicator& world, Team& team) {
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
// run directory, loads a previous record and replays it into the strategy (its
// Coordinator), so that every one of these problems ends all ranks alike. Collective.
struct Startup {
  std::unique_ptr<Coordinator> coordinator;  // rank 0, when there is work to do
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
    auto strategy = search::make_strategy(strategy_options);
    if (o.evaluation.on_tokens) {  // every rank reads the shards: check them on every rank
      std::vector<std::string> specs = o.evaluation.tokens.train_paths;
      specs.insert(specs.end(), o.evaluation.tokens.valid_paths.begin(), o.evaluation.tokens.valid_paths.end());
      data::TokenDataset(specs, o.evaluation.tokens.vocab_size);
    }
    if (world.rank() != 0) return;
    if (o.dry_run && !std::filesystem::exists(o.run_dir)) return;  // a dry run leaves no trace
    std::error_code error;
    std::filesystem::create_directories(o.run_dir, error);
    HNAS_CHECK(!error, InputError, "cannot create run directory " << o.run_dir << ": " << error.message());
    const std::string path = o.run_dir + "/results.h5";
    std::optional<SearchRecord> record;
    if (std::filesystem::exists(path)) {
      record = SearchRecord::load(path);
      const auto difference = first_difference(search_defining_config(record->provenance().config),
                                               search_defining_config(o.effective_ini));
      HNAS_CHECK(difference.empty(), ConfigError,
                 o.run_dir << " holds a search with another configuration (" << difference
                           << "); rerun with the same configuration to resume, or use a new --run-dir");
      s.already_complete = record->status() == "completed";
      auto provenance = make_provenance(o, world);
      provenance.started_utc = record->provenance().started_utc;
      record->provenance() = provenance;
    } else {
      record.emplace(objective_task_names(o.evaluation), make_provenance(o, world));
    }
    if (s.already_complete || o.dry_run) return;
    // Replays the record and writes results.h5 (which proves the directory writable).
    s.coordinator = std::make_unique<Coordinator>(o, std::move(strategy), std::move(*record), path, world,
                                                  static_cast<int>(o.ranks_per_candidate));
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
  if (world.rank() == 0) {
    end = coordinate(options, *startup.coordinator, team);
    startup.coordinator->finish();
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
