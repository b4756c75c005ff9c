// SPDX-License-Identifier: Apache-2.0
// Sample efficiency of the search strategies, without training: reads the objective of
// every candidate of a space from an exhaustive search's results.h5, then replays BO and
// random search over the same space for many seeds, answering each proposal with the
// tabulated objective. Reports how many evaluations each strategy needs to reach the
// true best candidate and any of the top fraction (5% by default): median and quartiles
// over the seeds, BO against random.
//
//   sample_efficiency_bench RUN_DIR/results.h5 [--seeds 20] [--budget 256] [--top 0.05]
//                           [--concurrent 1] [--strategies bo,random]
//
// Seeds are 0..seeds-1 for both strategies. --concurrent P keeps P proposals pending, as
// P teams would (results come back oldest first); BO then fills the gaps with its
// constant-liar fantasies, as in a real parallel search.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "hnas/arch/genome.hpp"
#include "hnas/core/error.hpp"
#include "hnas/io/h5.hpp"
#include "hnas/io/results_table.hpp"
#include "hnas/search/search_space.hpp"
#include "hnas/search/strategy.hpp"

namespace {

using hnas::arch::Genome;
using hnas::arch::Primitive;
using hnas::search::StrategyKind;

struct Options {
  std::string results;
  int seeds = 20;
  int64_t budget = 256;
  double top = 0.05;
  int concurrent = 1;
  std::vector<StrategyKind> strategies{StrategyKind::Bayesian, StrategyKind::Random};
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "%s\nusage: sample_efficiency_bench RESULTS.h5 [--seeds N] [--budget B] [--top F] [--concurrent P]\n"
               "                               [--strategies bo,random]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + arg).c_str());
      return argv[++i];
    };
    if (arg == "--seeds") {
      o.seeds = std::atoi(value().c_str());
    } else if (arg == "--budget") {
      o.budget = std::atoll(value().c_str());
    } else if (arg == "--top") {
      o.top = std::atof(value().c_str());
    } else if (arg == "--concurrent") {
      o.concurrent = std::atoi(value().c_str());
    } else if (arg == "--strategies") {
      o.strategies.clear();
      std::string list = value() + ",", item;
      for (char c : list) {
        if (c != ',') {
          item += c;
          continue;
        }
        const auto kind = hnas::search::parse_strategy(item);
        if (!kind || (*kind != StrategyKind::Bayesian && *kind != StrategyKind::Random))
          usage(("--strategies takes bo and random, got " + item).c_str());
        o.strategies.push_back(*kind);
        item.clear();
      }
    } else if (!arg.empty() && arg[0] == '-') {
      usage(("unknown option " + arg).c_str());
    } else {
      o.results = arg;
    }
  }
  if (o.results.empty()) usage("no results file given");
  if (o.seeds < 1 || o.budget < 1 || o.concurrent < 1 || !(o.top > 0 && o.top <= 1))
    usage("--seeds, --budget and --concurrent must be >= 1, --top in (0, 1]");
  return o;
}

// The tabulated space: every candidate's objective (NaN when its evaluation was invalid).
struct Landscape {
  hnas::search::SearchSpaceOptions space;
  std::map<std::string, double> objective;
};

Landscape load(const std::string& path) {
  const auto file = hnas::io::open_file_read_only(path);
  const auto table = hnas::io::read_table(file.get(), "/search/candidates");
  std::map<std::string, size_t> column;
  for (size_t c = 0; c < table.columns.size(); ++c) column[table.columns[c].name] = c;
  for (const char* name : {"arch", "objective", "valid", "rung"})
    if (!column.count(name)) throw hnas::InputError(path + ": /search/candidates has no column " + name);

  Landscape land;
  std::set<Primitive> letters;
  size_t layers = 0;
  for (const auto& row : table.rows) {
    if (std::get<int64_t>(row[column["rung"]]) != 0) continue;  // only full-fidelity rows of an exhaustive run
    const auto arch = std::get<std::string>(row[column["arch"]]);
    const bool valid = std::get<int64_t>(row[column["valid"]]) != 0;
    const double objective = valid ? std::get<double>(row[column["objective"]]) : NAN;
    if (!land.objective.emplace(arch, objective).second)
      throw hnas::InputError(path + ": " + arch + " was evaluated twice; expected one exhaustive search");
    const auto genome = Genome::parse(arch);
    if (layers != 0 && genome.size() != layers) throw hnas::InputError(path + ": candidates of different depths");
    layers = genome.size();
    for (size_t i = 0; i < genome.size(); ++i) letters.insert(genome[i]);
  }
  if (layers == 0) throw hnas::InputError(path + ": no candidates");
  land.space.num_layers = static_cast<int64_t>(layers);
  land.space.primitives.assign(letters.begin(), letters.end());
  // The simulated strategies search the unconstrained space of these primitives: every
  // candidate of it needs a tabulated objective.
  for (const auto& g : hnas::search::SearchSpace(land.space).enumerate())
    if (!land.objective.count(g.to_string()))
      throw hnas::InputError(path + ": " + g.to_string() +
                             " has no result; run an exhaustive search to completion first (unconstrained space of " +
                             std::to_string(layers) + " layers)");
  return land;
}

// Evaluations (1-based) until the first proposal in `targets`, per seed; budget + 1 when
// never reached ("censored").
struct Trace {
  std::optional<int64_t> best, top;
};

Trace simulate(const Landscape& land, const Options& o, StrategyKind kind, uint64_t seed,
               const std::set<std::string>& best, const std::set<std::string>& top, double& seconds) {
  hnas::search::StrategyOptions options;
  options.kind = kind;
  options.space = land.space;
  options.max_evaluations = o.budget;
  options.seed = seed;
  const auto start = std::chrono::steady_clock::now();
  auto strategy = hnas::search::make_strategy(options);

  Trace trace;
  std::deque<hnas::search::Proposal> pending;
  int64_t evaluations = 0;
  while (!(trace.best && trace.top)) {
    while (static_cast<int>(pending.size()) < o.concurrent)
      if (auto p = strategy->propose())
        pending.push_back(std::move(*p));
      else
        break;
    if (pending.empty()) break;  // budget spent
    const auto p = pending.front();
    pending.pop_front();
    const auto arch = p.genome.to_string();
    const double value = land.objective.at(arch);
    strategy->observe(p, {value, std::isfinite(value)});
    ++evaluations;
    if (!trace.best && best.count(arch)) trace.best = evaluations;
    if (!trace.top && top.count(arch)) trace.top = evaluations;
  }
  seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return trace;
}

// Linear-interpolation quantile (the default of numpy.quantile).
double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double position = q * static_cast<double>(v.size() - 1);
  const size_t low = static_cast<size_t>(std::floor(position));
  const size_t high = std::min(low + 1, v.size() - 1);
  return v[low] + (position - static_cast<double>(low)) * (v[high] - v[low]);
}

struct Summary {
  double q1 = NAN, median = NAN, q3 = NAN, mean = NAN;
  int censored = 0;
};

Summary summarize(const std::vector<std::optional<int64_t>>& hits, int64_t budget) {
  std::vector<double> v;
  Summary s;
  for (const auto& h : hits) {
    v.push_back(static_cast<double>(h ? *h : budget + 1));  // a miss counts as budget + 1 (a lower bound)
    s.censored += !h;
  }
  s.q1 = quantile(v, 0.25);
  s.median = quantile(v, 0.5);
  s.q3 = quantile(v, 0.75);
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  return s;
}

std::string join(const std::vector<std::optional<int64_t>>& hits) {
  std::string out;
  for (const auto& h : hits) out += (out.empty() ? "" : " ") + (h ? std::to_string(*h) : std::string("-"));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    const Landscape land = load(o.results);

    // The targets: the best candidate(s) (ties included) and the top fraction (at least one
    // candidate; candidates tied with the last one included).
    std::vector<std::pair<double, std::string>> ranked;
    int invalid = 0;
    for (const auto& [arch, value] : land.objective) {
      if (std::isfinite(value))
        ranked.emplace_back(value, arch);
      else
        ++invalid;
    }
    if (ranked.empty()) throw hnas::InputError(o.results + ": no valid candidate");
    std::sort(ranked.rbegin(), ranked.rend());
    const size_t n = land.objective.size();
    const size_t k = std::min(ranked.size(), std::max<size_t>(1, static_cast<size_t>(std::ceil(o.top * n))));
    std::set<std::string> best, top;
    for (const auto& [value, arch] : ranked) {
      if (value == ranked.front().first) best.insert(arch);
      if (value >= ranked[k - 1].first) top.insert(arch);
    }

    std::printf("space: %zu candidates of %ld layers, %d invalid; objective best %.4f, median %.4f, worst %.4f\n", n,
                static_cast<long>(land.space.num_layers), invalid, ranked.front().first,
                ranked[ranked.size() / 2].first, ranked.back().first);
    std::printf("targets: top-1 = %zu candidate(s) at %.4f (%s%s); top %.0f%% = %zu candidates at >= %.4f\n",
                best.size(), ranked.front().first, best.begin()->c_str(), best.size() > 1 ? ", ..." : "", 100 * o.top,
                top.size(), ranked[k - 1].first);
    std::printf("%d seeds, budget %ld, %d pending at a time; evaluations until the first hit (a miss counts as %ld)\n",
                o.seeds, static_cast<long>(o.budget), o.concurrent, static_cast<long>(o.budget + 1));
    // Random search without replacement hits a set of m among n after (n+1)/(m+1) draws on
    // average: a check of the random rows below.
    const auto expected = [n](size_t m) { return static_cast<double>(n + 1) / static_cast<double>(m + 1); };
    std::printf("(uniform random expectation: top-1 %.1f, top %.0f%% %.1f)\n\n", expected(best.size()), 100 * o.top,
                expected(top.size()));

    std::map<StrategyKind, std::pair<Summary, Summary>> results;
    std::printf("%-8s %-8s %8s %8s %8s %8s %6s  %s\n", "strategy", "target", "q1", "median", "q3", "mean", "missed",
                "s/run");
    for (const StrategyKind kind : o.strategies) {
      std::vector<std::optional<int64_t>> to_best, to_top;
      double seconds = 0;
      for (int seed = 0; seed < o.seeds; ++seed) {
        const Trace t = simulate(land, o, kind, static_cast<uint64_t>(seed), best, top, seconds);
        to_best.push_back(t.best);
        to_top.push_back(t.top);
      }
      const Summary b = summarize(to_best, o.budget), t = summarize(to_top, o.budget);
      results[kind] = {b, t};
      const char* name = hnas::search::strategy_name(kind);
      std::printf("%-8s %-8s %8.1f %8.1f %8.1f %8.1f %6d  %.2f\n", name, "top-1", b.q1, b.median, b.q3, b.mean,
                  b.censored, seconds / o.seeds);
      std::printf("%-8s %-8s %8.1f %8.1f %8.1f %8.1f %6d\n", name,
                  ("top" + std::to_string(std::lround(100 * o.top)) + "%").c_str(), t.q1, t.median, t.q3, t.mean,
                  t.censored);
      std::printf("         per seed, top-1: %s\n", join(to_best).c_str());
      std::printf("         per seed, top %.0f%%: %s\n", 100 * o.top, join(to_top).c_str());
    }
    if (results.count(StrategyKind::Bayesian) && results.count(StrategyKind::Random)) {
      const auto& bo = results[StrategyKind::Bayesian];
      const auto& random = results[StrategyKind::Random];
      std::printf("\nrandom / bo, median evaluations: top-1 %.2fx, top %.0f%% %.2fx (above 1: BO needs fewer)\n",
                  random.first.median / bo.first.median, 100 * o.top, random.second.median / bo.second.median);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sample_efficiency_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
