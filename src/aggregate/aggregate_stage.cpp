// SPDX-License-Identifier: Apache-2.0
#include "hnas/aggregate/aggregate_stage.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "hnas/aggregate/clustering.hpp"
#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/hash.hpp"
#include "hnas/core/log.hpp"
#include "hnas/core/signals.hpp"
#include "hnas/dist/communicator.hpp"
#include "hnas/dist/gradient_reducer.hpp"
#include "hnas/io/h5.hpp"
#include "hnas/io/results_table.hpp"
#include "hnas/io/run_directory.hpp"
#include "hnas/search/candidate_evaluation.hpp"
#include "hnas/search/search_record.hpp"

namespace hnas::aggregate {
namespace {

using search::CandidateResult;
using search::SearchRecord;

const char* kAggregateDoc =
    "the Aggregator: the top K-means cluster of the search's candidates at its highest fidelity, combined "
    "layer by layer (N_c clustering) or the best candidate; the chosen architecture is attribute arch";

std::string results_path(const AggregateJob& job) { return job.run_dir + "/results.h5"; }

// The rows the aggregate is made from: the search's last stage at its highest fidelity,
// one member per architecture (the mean objective of its valid evaluations).
struct Selection {
  std::string search_status;
  int32_t stage = 0;
  double fidelity = 1;
  int32_t rung = 0;
  int64_t num_layers = 0;
  int64_t next_candidate_id = 0;
  size_t rows = 0;
  std::map<std::string, int64_t> invalid_by_status;
  std::vector<Member> valid;  // by candidate id
  struct Row {
    int64_t candidate_id = -1;
    bool valid = false;
  };
  std::map<std::string, Row> rows_by_arch;  // an evaluation of each architecture at this fidelity
  std::vector<std::string> task_names;
};

Selection select_rows(const SearchRecord& record, int64_t search_layers, const std::string& path) {
  Selection s;
  s.search_status = search::search_status_name(record.status());
  s.task_names = record.task_names();
  const auto& results = record.results();
  for (const auto& r : results) s.next_candidate_id = std::max(s.next_candidate_id, r.candidate_id + 1);
  bool any = false;
  for (const auto& r : results) {
    if (r.status == search::CandidateStatus::Stopped) continue;  // re-run on resume: not a result
    if (!any || r.stage > s.stage) s.stage = r.stage;
    any = true;
  }
  HNAS_CHECK(any, ConfigError, path << " holds a search with no evaluated candidate yet; nothing to aggregate");
  bool first = true;
  for (const auto& r : results)
    if (r.stage == s.stage && r.status != search::CandidateStatus::Stopped && (first || r.fidelity > s.fidelity)) {
      s.fidelity = r.fidelity;
      s.rung = r.rung;
      first = false;
    }
  s.num_layers = search_layers;
  std::map<std::string, std::pair<double, int64_t>> sums;  // arch -> (sum, count) of valid objectives
  std::map<std::string, int64_t> first_id;
  for (const auto& r : results) {
    if (r.stage != s.stage || r.fidelity != s.fidelity || r.status == search::CandidateStatus::Stopped) continue;
    const auto genome = arch::Genome::parse(r.arch);
    HNAS_CHECK(static_cast<int64_t>(genome.size()) == search_layers, InputError,
               path << ": candidate " << r.candidate_id << " (" << r.arch << ") has " << genome.size()
                    << " layers but the search's architectures have " << search_layers
                    << "; the aggregate combines architectures of one length only");
    ++s.rows;
    const bool valid = r.valid && std::isfinite(r.objective);
    auto& row = s.rows_by_arch.emplace(r.arch, Selection::Row{r.candidate_id, valid}).first->second;
    if (!valid) {
      ++s.invalid_by_status[search::candidate_status_name(r.status)];
      continue;
    }
    if (!row.valid) row = {r.candidate_id, true};  // prefer a valid evaluation
    auto& sum = sums[r.arch];
    sum.first += r.objective;
    ++sum.second;
    first_id.emplace(r.arch, r.candidate_id);
  }
  for (const auto& [arch_text, sum] : sums)
    s.valid.push_back(
        {first_id[arch_text], arch::Genome::parse(arch_text), sum.first / static_cast<double>(sum.second)});
  std::sort(s.valid.begin(), s.valid.end(),
            [](const Member& a, const Member& b) { return a.candidate_id < b.candidate_id; });
  if (s.valid.empty()) {
    std::string statuses;
    for (const auto& [status, count] : s.invalid_by_status)
      statuses += (statuses.empty() ? "" : ", ") + std::to_string(count) + " " + status;
    throw ConfigError(path + " holds a search with no valid candidate at its highest fidelity (" +
                      std::to_string(s.rows) + " evaluated: " + statuses + "); nothing to aggregate");
  }
  return s;
}

// One architecture considered as the aggregate, and how it fared.
struct Proposal {
  std::string method;  // n0, n1, nall, best
  arch::Genome genome;
  std::optional<Consensus> consensus;
  double objective = NAN;
  bool scored = false;         // settled: measured, or not to be measured
  bool measured = false;       // evaluated by the search or here
  bool valid = false;          // the objective is usable
  std::string objective_from;  // "search candidate 17", "evaluated by the aggregator", "not evaluated"
  bool below_cluster = false;
  bool attention_outside = false;
  bool chosen = false;
  bool failed_checks() const { return below_cluster || attention_outside; }
};

// Everything rank 0 decides, from the search record and the options.
class Aggregation {
 public:
  Aggregation(const AggregateOptions& o, const SearchRecord& record, int64_t search_layers, const std::string& path)
      : options_(o), selection_(select_rows(record, search_layers, path)) {
    std::vector<double> objectives;
    for (const auto& m : selection_.valid) objectives.push_back(m.objective);
    clustering_ = kmeans_1d(objectives, o.clusters);
    const int top = static_cast<int>(clustering_.clusters.size()) - 1;
    for (size_t i = 0; i < selection_.valid.size(); ++i)
      if (clustering_.label[i] == top) top_.push_back(selection_.valid[i]);
    top_cluster_size_ = top_.size();
    // Limited to a fraction of the valid candidates: keep the best of the cluster.
    const auto limit = static_cast<size_t>(
        std::max(1.0, std::ceil(o.top_fraction * static_cast<double>(selection_.valid.size()) - 1e-9)));
    if (top_.size() > limit) {
      std::stable_sort(top_.begin(), top_.end(), [](const Member& a, const Member& b) {
        return a.objective > b.objective || (a.objective == b.objective && a.candidate_id < b.candidate_id);
      });
      top_.resize(limit);
      std::sort(top_.begin(), top_.end(),
                [](const Member& a, const Member& b) { return a.candidate_id < b.candidate_id; });
    }
    lowest_member_ = top_.front().objective;
    attention_min_ = attention_max_ = attention_fraction(top_.front().genome);
    for (const auto& m : top_) {
      lowest_member_ = std::min(lowest_member_, m.objective);
      attention_min_ = std::min(attention_min_, attention_fraction(m.genome));
      attention_max_ = std::max(attention_max_, attention_fraction(m.genome));
    }
    add_proposal(o.method == AggregateMethod::Best ? "best" : method_label(o.method, o.context),
                 o.method == AggregateMethod::Best, o.context);
    if (o.method == AggregateMethod::Consensus && o.fallback == Fallback::Context)
      for (int c : {1, kContextAll})
        if (o.context != kContextAll && (c == kContextAll || c > o.context))
          add_proposal(method_label(AggregateMethod::Consensus, c), false, c);
    if (o.method == AggregateMethod::Consensus && o.fallback != Fallback::None) add_proposal("best", true, 0);
  }

  const Selection& selection() const { return selection_; }

  /// The next architecture to train, or nullopt once the aggregate is decided.
  std::optional<arch::Genome> next_evaluation() {
    while (!decided_) {
      Proposal& p = proposals_[current_];
      if (!p.scored && !resolve_from_search(p) && !resolve_from_earlier(p)) {
        if (options_.evaluate) return p.genome;
        p.objective_from = "not evaluated (aggregate.evaluate = false)";
        p.scored = true;
        p.valid = false;
      }
      check(p);
      if (!p.failed_checks() || current_ + 1 == proposals_.size()) {
        p.chosen = true;
        decided_ = true;
      } else {
        ++current_;
      }
    }
    return std::nullopt;
  }

  /// The result of training the architecture next_evaluation() returned.
  void record_evaluation(CandidateResult result) {
    Proposal& p = proposals_[current_];
    p.scored = p.measured = true;
    p.valid = result.valid && std::isfinite(result.objective);
    p.objective = result.objective;
    p.objective_from = "evaluated by the aggregator (/aggregate/evaluations)";
    evaluations_.push_back(std::move(result));
  }

  const Proposal& chosen() const { return proposals_[current_]; }

  /// What the aggregate went through, for the record and the log.
  std::string reason() const {
    const Proposal& first = proposals_.front();
    if (&chosen() == &first)
      return first.failed_checks() ? first.method + " kept despite failing the checks (aggregate.fallback = none)"
                                   : first.method + " as configured; it passes the checks";
    return first.method + " aggregate " + first.genome.to_string() + " failed the checks (" + failures(first) +
           "); aggregate.fallback = " + (options_.fallback == Fallback::Best ? "best" : "context") + " chose " +
           chosen().method + " " + chosen().genome.to_string();
  }

  std::vector<std::string> warnings() const {
    std::vector<std::string> out;
    for (const auto& p : proposals_) {
      if (!p.scored || (!p.failed_checks() && p.valid)) continue;
      if (p.below_cluster)
        out.push_back(log::format(
            "the %s aggregate %s scores %s, below the top cluster's lowest member (%.4f): the cluster is too broad for "
            "a per-layer majority (consider aggregate.fallback = best or context, or aggregate.top_fraction)",
            p.method.c_str(), p.genome.to_string().c_str(),
            p.valid ? log::format("%.4f", p.objective).c_str() : "no valid objective", lowest_member_));
      if (p.attention_outside)
        out.push_back(
            log::format("the %s aggregate %s has %.0f%% attention layers, outside the top cluster's %.0f%%-%.0f%%",
                        p.method.c_str(), p.genome.to_string().c_str(), 100 * attention_fraction(p.genome),
                        100 * attention_min_, 100 * attention_max_));
    }
    if (selection_.search_status != "completed")
      out.push_back("the search has not completed (status " + selection_.search_status +
                    "): this aggregate is of the candidates so far (--partial)");
    return out;
  }

  void print() const {
    const auto& s = selection_;
    int64_t invalid = 0;
    for (const auto& [status, count] : s.invalid_by_status) invalid += count;
    log::info(
        log::format("aggregate: search %s; %zu evaluations at fidelity %g (stage %d), %zu valid architectures, "
                    "%ld invalid",
                    s.search_status.c_str(), s.rows, s.fidelity, s.stage, s.valid.size(), static_cast<long>(invalid)));
    std::string clusters;
    for (size_t c = 0; c < clustering_.clusters.size(); ++c) {
      const auto& k = clustering_.clusters[c];
      clusters += log::format("%s[%.4f, %.4f] x%ld", c ? " | " : "", k.lower, k.upper, static_cast<long>(k.size));
    }
    log::info(log::format("aggregate: K-means K=%d (%zu clusters): %s", options_.clusters, clustering_.clusters.size(),
                          clusters.c_str()));
    log::info(log::format(
        "aggregate: top cluster %zu of %zu valid (%.0f%%)%s; objective %.4f-%.4f; attention "
        "%.0f%%-%.0f%%",
        top_cluster_size_, s.valid.size(), 100.0 * share(),
        top_.size() < top_cluster_size_ ? log::format(", limited to its best %zu", top_.size()).c_str() : "",
        lowest_member_, best_member(top_).objective, 100 * attention_min_, 100 * attention_max_));
    const auto& best = best_member(selection_.valid);
    log::info(log::format("aggregate: best candidate %s (id %ld) objective %.4f", best.genome.to_string().c_str(),
                          static_cast<long>(best.candidate_id), best.objective));
  }

  void print_decision() const {
    for (const auto& p : considered()) {
      if (!p.consensus) continue;
      std::string header = "aggregate: " + p.method + " votes  layer";
      for (const auto& info : arch::primitive_registry()) header += log::format("  %c", info.letter);
      log::info(header + "  context  chosen");
      for (size_t i = 0; i < p.consensus->layers.size(); ++i) {
        const auto& v = p.consensus->layers[i];
        std::string line = log::format("aggregate: %s votes  %5zu", p.method.c_str(), i + 1);
        for (size_t q = 0; q < arch::kNumPrimitives; ++q) line += log::format("  %ld", static_cast<long>(v.votes[q]));
        line += log::format("  %d/%d  %c%s", v.context_used, v.context_requested, arch::primitive_info(v.chosen).letter,
                            v.tie ? " (tie)" : "");
        log::info(line);
      }
    }
    for (const auto& p : proposals_)
      if (p.scored)
        log::info(log::format("aggregate: %-4s %s (%s) attention %.0f%%: objective %s, %s%s", p.method.c_str(),
                              p.genome.to_string().c_str(), p.genome.to_run_length().c_str(),
                              100 * attention_fraction(p.genome),
                              p.valid ? log::format("%.4f", p.objective).c_str() : "-", p.objective_from.c_str(),
                              p.failed_checks() ? " FAILS THE CHECKS" : ""));
    for (const auto& w : warnings()) log::warn("aggregate: " + w);
    log::info("aggregate: chosen " + chosen().genome.to_string() + " (" + chosen().genome.to_run_length() + ") by " +
              chosen().method + ": " + reason());
  }

  void write(const std::string& path, const std::string& fingerprint, const std::string& config) const {
    io::update_file_atomically(path, {"/aggregate"}, [&](hid_t file) {
      io::write_table(file, "/aggregate/clusters", clusters_table(), "the K-means clusters of the objectives");
      io::write_table(file, "/aggregate/members", members_table(),
                      "every valid architecture at the highest fidelity, its cluster, and whether it is a member");
      io::write_table(file, "/aggregate/votes", votes_table(), "N_c: the votes behind each chosen layer");
      io::write_table(file, "/aggregate/proposals", proposals_table(),
                      "each architecture considered as the aggregate, in order, and how it fared");
      io::write_table(file, "/aggregate/evaluations", search::candidates_table(evaluations_, selection_.task_names),
                      "the aggregator's own evaluations (columns as /search/candidates)");
      io::write_string_dataset(file, "/aggregate/config", config,
                               "the effective configuration of hnas aggregate (INI text)");
      io::H5Group group(HNAS_CHECK_H5(H5Gopen2(file, "/aggregate", H5P_DEFAULT)));
      const hid_t g = group.get();
      const auto& c = chosen();
      io::write_string_attribute(g, "doc", kAggregateDoc);
      io::write_string_attribute(g, "arch", c.genome.to_string());
      io::write_string_attribute(g, "arch_run_length", c.genome.to_run_length());
      io::write_string_attribute(g, "method", proposals_.front().method);
      io::write_string_attribute(g, "method_used", c.method);
      io::write_string_attribute(g, "reason", reason());
      std::string warnings_text;
      for (const auto& w : warnings()) warnings_text += (warnings_text.empty() ? "" : "\n") + w;
      io::write_string_attribute(g, "warnings", warnings_text);
      io::write_double_attribute(g, "objective", c.valid ? c.objective : NAN);
      io::write_string_attribute(g, "objective_from", c.objective_from);
      io::write_int_attribute(g, "clusters", options_.clusters);
      io::write_int_attribute(g, "clusters_found", static_cast<int64_t>(clustering_.clusters.size()));
      io::write_int_attribute(g, "context", options_.context);
      io::write_double_attribute(g, "top_fraction", options_.top_fraction);
      io::write_int_attribute(g, "valid_candidates", static_cast<int64_t>(selection_.valid.size()));
      io::write_int_attribute(g, "top_cluster_size", static_cast<int64_t>(top_cluster_size_));
      io::write_int_attribute(g, "members", static_cast<int64_t>(top_.size()));
      io::write_double_attribute(g, "top_cluster_share", share());
      io::write_double_attribute(g, "lowest_member_objective", lowest_member_);
      io::write_double_attribute(g, "best_objective", best_member(selection_.valid).objective);
      io::write_string_attribute(g, "best_arch", best_member(selection_.valid).genome.to_string());
      io::write_double_attribute(g, "members_attention_min", attention_min_);
      io::write_double_attribute(g, "members_attention_max", attention_max_);
      io::write_double_attribute(g, "attention_fraction", attention_fraction(c.genome));
      io::write_double_attribute(g, "fidelity", selection_.fidelity);
      io::write_int_attribute(g, "stage", selection_.stage);
      io::write_string_attribute(g, "search_status", selection_.search_status);
      io::write_int_attribute(g, "partial", selection_.search_status != "completed");
      io::write_string_attribute(g, "input_fingerprint", fingerprint);
      io::write_string_attribute(g, "status", "completed");  // last: a reader trusts the group only with it
    });
  }

 private:
  // The proposals looked at so far (all of them once decided; a later one only if needed).
  std::vector<Proposal> considered() const {
    return {proposals_.begin(), proposals_.begin() + static_cast<std::ptrdiff_t>(current_ + 1)};
  }

  double share() const { return static_cast<double>(top_cluster_size_) / static_cast<double>(selection_.valid.size()); }

  void add_proposal(const std::string& method, bool best, int context) {
    Proposal p;
    p.method = method;
    if (best) {
      p.genome = best_member(top_).genome;
    } else {
      p.consensus = layerwise_consensus(top_, context);
      p.genome = p.consensus->genome;
    }
    proposals_.push_back(std::move(p));
  }

  // The search may already have evaluated the architecture at this fidelity.
  bool resolve_from_search(Proposal& p) const {
    const auto it = selection_.rows_by_arch.find(p.genome.to_string());
    if (it == selection_.rows_by_arch.end()) return false;
    p.scored = p.measured = true;
    p.valid = it->second.valid;
    p.objective = p.valid ? member_objective(p.genome) : NAN;
    p.objective_from = "search candidate " + std::to_string(it->second.candidate_id);
    return true;
  }

  // An earlier proposal of the same architecture (N_1 often equals N_0) was evaluated here.
  bool resolve_from_earlier(Proposal& p) const {
    for (const auto& q : proposals_) {
      if (&q == &p) break;
      if (q.measured && q.genome == p.genome) {
        p.scored = p.measured = true;
        p.valid = q.valid;
        p.objective = q.objective;
        p.objective_from = q.objective_from;
        return true;
      }
    }
    return false;
  }

  double member_objective(const arch::Genome& genome) const {
    for (const auto& m : selection_.valid)
      if (m.genome == genome) return m.objective;
    return NAN;
  }

  void check(Proposal& p) const {
    p.below_cluster = p.measured && (!p.valid || p.objective < lowest_member_);
    const double a = attention_fraction(p.genome);
    p.attention_outside = a < attention_min_ - 1e-12 || a > attention_max_ + 1e-12;
  }

  std::string failures(const Proposal& p) const {
    std::string out;
    if (p.below_cluster)
      out += p.valid ? log::format("objective %.4f below the lowest member's %.4f", p.objective, lowest_member_)
                     : std::string("no valid objective");
    if (p.attention_outside)
      out += std::string(out.empty() ? "" : "; ") + log::format("attention %.0f%% outside %.0f%%-%.0f%%",
                                                                100 * attention_fraction(p.genome),
                                                                100 * attention_min_, 100 * attention_max_);
    return out;
  }

  io::Table clusters_table() const {
    io::Table t;
    t.columns = {{"cluster", io::ColumnType::Int64, 0, "0 = lowest objectives"},
                 {"size", io::ColumnType::Int64, 0, "architectures in the cluster"},
                 {"lower", io::ColumnType::Float64, 0, "lowest objective"},
                 {"upper", io::ColumnType::Float64, 0, "highest objective"},
                 {"centroid", io::ColumnType::Float64, 0, "mean objective"},
                 {"top", io::ColumnType::Int64, 0, "1 for the cluster the aggregate is made from"}};
    for (size_t c = 0; c < clustering_.clusters.size(); ++c) {
      const auto& k = clustering_.clusters[c];
      t.rows.push_back({static_cast<int64_t>(c), k.size, k.lower, k.upper, k.centroid,
                        int64_t{c + 1 == clustering_.clusters.size()}});
    }
    return t;
  }

  io::Table members_table() const {
    io::Table t;
    size_t width = 1;
    for (const auto& m : selection_.valid) width = std::max(width, m.genome.size());
    t.columns = {{"candidate_id", io::ColumnType::Int64, 0, "first evaluation of the architecture in /search"},
                 {"arch", io::ColumnType::String, width, "architecture"},
                 {"objective", io::ColumnType::Float64, 0, "mean objective of its valid evaluations here"},
                 {"num_attention", io::ColumnType::Int64, 0, "attention layers"},
                 {"attention_fraction", io::ColumnType::Float64, 0, "attention layers / layers"},
                 {"cluster", io::ColumnType::Int64, 0, "see clusters"},
                 {"member", io::ColumnType::Int64, 0, "1 when it is one of the members the aggregate votes over"}};
    for (size_t i = 0; i < selection_.valid.size(); ++i) {
      const auto& m = selection_.valid[i];
      const bool member =
          std::any_of(top_.begin(), top_.end(), [&](const Member& t) { return t.candidate_id == m.candidate_id; });
      t.rows.push_back({m.candidate_id, m.genome.to_string(), m.objective,
                        static_cast<int64_t>(m.genome.count(arch::Primitive::Attention)), attention_fraction(m.genome),
                        int64_t{clustering_.label[i]}, int64_t{member}});
    }
    io::fit_string_columns(t);
    return t;
  }

  io::Table votes_table() const {
    io::Table t;
    t.columns = {{"method", io::ColumnType::String, 4, "n0, n1, nall, ..."},
                 {"layer", io::ColumnType::Int64, 0, "1-based position"},
                 {"chosen", io::ColumnType::String, 1, "the primitive chosen"},
                 {"context_requested", io::ColumnType::Int64, 0, "min(c, layer - 1)"},
                 {"context_used", io::ColumnType::Int64, 0, "after back-off"},
                 {"voters", io::ColumnType::Int64, 0, "members matching the chosen prefix"}};
    for (const auto& info : arch::primitive_registry())
      t.columns.push_back({std::string("votes_") + info.letter, io::ColumnType::Int64, 0,
                           std::string("voters whose layer is ") + info.name});
    for (const auto& info : arch::primitive_registry())
      t.columns.push_back({std::string("mean_objective_") + info.letter, io::ColumnType::Float64, 0,
                           std::string("mean objective of the voters for ") + info.name});
    t.columns.push_back({"tie", io::ColumnType::Int64, 0, "1 when the top count was shared (mean objective decided)"});
    for (const auto& p : considered()) {
      if (!p.consensus) continue;
      for (size_t i = 0; i < p.consensus->layers.size(); ++i) {
        const auto& v = p.consensus->layers[i];
        std::vector<io::Cell> row{p.method,
                                  static_cast<int64_t>(i + 1),
                                  std::string(1, arch::primitive_info(v.chosen).letter),
                                  int64_t{v.context_requested},
                                  int64_t{v.context_used},
                                  v.voters};
        for (auto count : v.votes) row.emplace_back(count);
        for (auto mean : v.mean_objective) row.emplace_back(mean);
        row.emplace_back(int64_t{v.tie});
        t.rows.push_back(std::move(row));
      }
    }
    io::fit_string_columns(t);
    return t;
  }

  io::Table proposals_table() const {
    io::Table t;
    size_t width = 1, from = 1;
    for (const auto& p : proposals_) {
      width = std::max(width, p.genome.size());
      from = std::max(from, p.objective_from.size());
    }
    t.columns = {{"order", io::ColumnType::Int64, 0, "0 = the configured method"},
                 {"method", io::ColumnType::String, 4, "n0, n1, nall or best"},
                 {"arch", io::ColumnType::String, width, "architecture"},
                 {"attention_fraction", io::ColumnType::Float64, 0, "attention layers / layers"},
                 {"objective", io::ColumnType::Float64, 0, "at the search's highest fidelity (NaN: none)"},
                 {"objective_from", io::ColumnType::String, from, "which evaluation gave it"},
                 {"below_cluster", io::ColumnType::Int64, 0, "1: below the top cluster's lowest member"},
                 {"attention_outside", io::ColumnType::Int64, 0, "1: attention fraction outside the members'"},
                 {"chosen", io::ColumnType::Int64, 0, "1 for the aggregate"}};
    for (size_t i = 0; i <= current_ && i < proposals_.size(); ++i) {
      const auto& p = proposals_[i];
      t.rows.push_back({static_cast<int64_t>(i), p.method, p.genome.to_string(), attention_fraction(p.genome),
                        p.valid ? p.objective : NAN, p.objective_from, int64_t{p.below_cluster},
                        int64_t{p.attention_outside}, int64_t{p.chosen}});
    }
    io::fit_string_columns(t);
    return t;
  }

  AggregateOptions options_;
  Selection selection_;
  Clustering clustering_;
  std::vector<Member> top_;
  size_t top_cluster_size_ = 0;
  double lowest_member_ = 0, attention_min_ = 0, attention_max_ = 0;
  std::vector<Proposal> proposals_;
  size_t current_ = 0;
  bool decided_ = false;
  std::vector<CandidateResult> evaluations_;
};

// The text whose hash decides whether /aggregate is current: the options and every row
// the aggregate is made from.
std::string input_text(const AggregateOptions& o, const Selection& s) {
  std::ostringstream out;
  out << "clusters=" << o.clusters << " method=" << (o.method == AggregateMethod::Best ? "best" : "nc")
      << " context=" << o.context << " top_fraction=" << log::format("%.10g", o.top_fraction)
      << " evaluate=" << o.evaluate << " fallback=" << static_cast<int>(o.fallback) << " search=" << s.search_status
      << " stage=" << s.stage << " fidelity=" << log::format("%.10g", s.fidelity) << "\n";
  for (const auto& m : s.valid)
    out << m.candidate_id << " " << m.genome.to_string() << " " << log::format("%.17g", m.objective) << "\n";
  for (const auto& [status, count] : s.invalid_by_status) out << status << " " << count << "\n";
  return out.str();
}

// Reads the search record and its recorded options; rank 0. Throws ConfigError for a
// directory without a search.
struct SearchInput {
  SearchRecord record;
  search::SearchOptions options;
  int64_t num_layers = 0;
};

SearchInput read_search(const AggregateOptions& o, const std::string& path, const std::string& run_dir) {
  std::error_code missing;
  HNAS_CHECK(std::filesystem::exists(path, missing), ConfigError,
             "no search in " << run_dir << " (" << path << " does not exist); run hnas search --run-dir " << run_dir
                             << " first");
  {
    const auto file = io::open_file_read_only(path);
    HNAS_CHECK(H5Lexists(file.get(), "search", H5P_DEFAULT) > 0, ConfigError,
               "no search in " << run_dir << " (" << path << " has no /search group); run hnas search --run-dir "
                               << run_dir << " first");
  }
  auto record = SearchRecord::load(path);
  auto options = o.search_options(record.provenance().config);
  const auto& st = options.strategy;
  const int64_t layers = st.target_layers > 0 ? st.target_layers : st.space.num_layers;
  return {std::move(record), std::move(options), layers};
}

bool has_completed_aggregate(hid_t file) {
  if (H5Lexists(file, "aggregate", H5P_DEFAULT) <= 0) return false;
  const io::H5Group group(HNAS_CHECK_H5(H5Gopen2(file, "/aggregate", H5P_DEFAULT)));
  return io::has_attribute(group.get(), "status") && io::read_string_attribute(group.get(), "status") == "completed";
}

// Trains `genome` as the search trained its candidates: on a team of the search's team
// size (the rows of each batch split the same way), the other ranks waiting. Collective
// over world; the result is rank 0's.
CandidateResult evaluate_on_team(const search::SearchOptions& so, const search::EvaluationRequest& request,
                                 const AggregateJob& job) {
  const auto& world = *job.world;
  const int team_size = static_cast<int>(std::min<int64_t>(so.ranks_per_candidate, world.size()));
  const bool in_team = world.rank() < team_size;
  const auto team = world.split(in_team ? 0 : 1, world.rank());
  CandidateResult result;
  int64_t stopped = 0;
  if (in_team) {
    std::unique_ptr<dist::GradientReducer> reducer;
    train::TrainingContext context;
    context.should_stop = [] { return stop_requested(); };
    if (job.gpu >= 0) {
      context.device = torch::Device(torch::kCUDA, job.gpu);
      if (team_size > 1) reducer = dist::make_nccl_reducer(team, job.gpu, job.nccl_timeout);
    } else if (team_size > 1) {
      reducer = dist::make_mpi_reducer(team);
    }
    context.reducer = reducer.get();
    auto evaluation = so.evaluation;
    evaluation.on_gpu = job.gpu >= 0;
    const dist::ScopedStallTimeout timed(job.stall_timeout);
    result = search::evaluate_candidate(evaluation, request, context, so.faults);
    stopped = result.status == search::CandidateStatus::Stopped;
  }
  world.broadcast(&stopped, sizeof stopped, 0);
  if (stopped) result.status = search::CandidateStatus::Stopped;
  return result;
}

}  // namespace

std::string method_label(AggregateMethod method, int context) {
  if (method == AggregateMethod::Best) return "best";
  return context == kContextAll ? "nall" : "n" + std::to_string(context);
}

bool aggregate_complete(const AggregateOptions& options, const AggregateJob& job) {
  int64_t complete = 0;
  dist::agree_on_errors(*job.world, [&] {
    const std::string path = results_path(job);
    std::error_code missing;
    if (job.world->rank() != 0 || !std::filesystem::exists(path, missing)) return;
    std::string recorded;
    {
      const auto file = io::open_results_file(path, {"/search", "/provenance"});
      if (!has_completed_aggregate(file.get())) return;
      const io::H5Group group(HNAS_CHECK_H5(H5Gopen2(file.get(), "/aggregate", H5P_DEFAULT)));
      recorded = io::read_string_attribute(group.get(), "input_fingerprint");
    }
    const auto input = read_search(options, path, job.run_dir);
    if (input.record.status() != search::SearchStatus::Completed && !options.partial) return;
    try {
      const Selection s = select_rows(input.record, input.num_layers, path);
      complete = recorded == hex_fingerprint(input_text(options, s));
    } catch (const Error&) {  // run() reports it
    }
  });
  job.world->broadcast(&complete, sizeof complete, 0);
  return complete != 0;
}

int run_aggregate(const AggregateOptions& options, const AggregateJob& job) {
  const auto& world = *job.world;
  const std::string path = results_path(job);
  std::unique_ptr<Aggregation> aggregation;  // rank 0
  std::string recorded_config, fingerprint;
  search::EvaluationRequest request;
  dist::agree_on_errors(world, [&] {
    if (world.rank() != 0) return;
    std::error_code missing;
    HNAS_CHECK(std::filesystem::exists(path, missing), ConfigError,
               "no search in " << job.run_dir << " (" << path << " does not exist); run hnas search --run-dir "
                               << job.run_dir << " first");
    if (job.hold_run_directory) job.hold_run_directory();
    auto input = read_search(options, path, job.run_dir);
    HNAS_CHECK(input.record.status() == search::SearchStatus::Completed || options.partial, ConfigError,
               "the search in " << job.run_dir << " has not completed (status "
                                << search::search_status_name(input.record.status())
                                << "); resume it with hnas search, or pass --partial to aggregate what it has");
    aggregation = std::make_unique<Aggregation>(options, input.record, input.num_layers, path);
    const auto& s = aggregation->selection();
    fingerprint = hex_fingerprint(input_text(options, s));
    recorded_config = input.record.provenance().config;
    request.fidelity = s.fidelity;
    request.proposal.rung = s.rung;
    request.proposal.stage = s.stage;
    request.candidate_id = s.next_candidate_id;
  });
  if (world.rank() == 0) aggregation->print();
  if (job.dry_run) {
    log::info("aggregate: dry run; nothing evaluated or written");
    return kExitOk;
  }
  world.broadcast_string(recorded_config, 0);
  world.broadcast(&request.fidelity, sizeof request.fidelity, 0);
  world.broadcast(&request.proposal.rung, sizeof request.proposal.rung, 0);
  world.broadcast(&request.proposal.stage, sizeof request.proposal.stage, 0);
  world.broadcast(&request.candidate_id, sizeof request.candidate_id, 0);

  std::optional<search::SearchOptions> search_options;  // parsed once an evaluation is needed
  while (true) {
    std::string next;
    dist::agree_on_errors(world, [&] {
      if (world.rank() != 0) return;
      if (const auto genome = aggregation->next_evaluation()) next = genome->to_string();
    });
    world.broadcast_string(next, 0);
    if (next.empty()) break;
    dist::agree_on_errors(world, [&] {
      if (!search_options) search_options = options.search_options(recorded_config);
      request.proposal.genome = arch::Genome::parse(next);
      request.proposal.reason = "aggregate";
      train::check_memory_fits(request.proposal.genome, search_options->evaluation,
                               static_cast<int>(std::min<int64_t>(search_options->ranks_per_candidate, world.size())),
                               job.ranks_on_node);
    });
    log::info("aggregate: evaluating " + next + " with the search's evaluator at fidelity " +
              log::format("%g", request.fidelity));
    auto result = evaluate_on_team(*search_options, request, job);
    if (result.status == search::CandidateStatus::Stopped) {
      log::info(
          "aggregate: stopped by a signal during its evaluation; nothing written. Rerun to continue (exit code 75).");
      return kExitResumable;
    }
    if (world.rank() == 0) aggregation->record_evaluation(std::move(result));
    ++request.candidate_id;
  }
  dist::agree_on_errors(world, [&] {
    if (world.rank() != 0) return;
    aggregation->print_decision();
    aggregation->write(path, fingerprint, job.config);
    log::info("aggregate: written to " + path + ":/aggregate");
  });
  return kExitOk;
}

RecordedAggregate read_recorded_aggregate(const std::string& results_path) {
  const auto file = io::open_results_file(results_path, {"/search"});
  HNAS_CHECK(has_completed_aggregate(file.get()), InputError,
             results_path << " has no completed aggregate (/aggregate); run hnas aggregate on its run directory first, "
                             "or give the architecture with --arch");
  const io::H5Group group(HNAS_CHECK_H5(H5Gopen2(file.get(), "/aggregate", H5P_DEFAULT)));
  RecordedAggregate r;
  r.genome = arch::Genome::parse(io::read_string_attribute(group.get(), "arch"));
  r.method = io::read_string_attribute(group.get(), "method_used");
  r.fingerprint = io::read_string_attribute(group.get(), "input_fingerprint");
  r.partial = io::read_int_attribute(group.get(), "partial") != 0;
  return r;
}

}  // namespace hnas::aggregate
