// SPDX-License-Identifier: Apache-2.0
// One-shot Bayesian optimisation (paper section 3.1): a space-filling initial design, then
// each proposal maximises log expected improvement under a GP surrogate of the objective
// over the layer encoding.
//
// Choices that the paper leaves open, made here:
// - Invalid outcomes (diverged, failed) enter the GP at the worst valid objective seen so
//   far, so the search learns to avoid their region; before any valid outcome they are
//   left out.
// - Pending proposals enter the GP as "constant liar" fantasies at the minimum observed
//   objective (CL-min), hyperparameters unchanged: the fantasy removes the pending point's
//   uncertainty and makes its neighbourhood look poor, so concurrent proposals spread out
//   instead of piling onto one optimum. CL-min is the conservative liar (Ginsbourger et
//   al. 2010), which favours exploration among the concurrent points.
// - The incumbent of EI is the largest posterior mean at an observed point rather than the
//   largest raw outcome: with noisy evaluations that approximates the paper's noisy EI
//   (qLogNEI) without Monte Carlo.
// - Spaces of at most 2^16 feasible candidates are scored exhaustively; larger ones by a
//   random pool plus single-layer-mutation hill climbing from the pool's best points.
// Deterministic: every random draw comes from Rng(derive_seed(seed, "bo")) forks keyed by
// the proposal count, so replaying the propose()/observe() sequence replays the search.
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "hnas/core/check.hpp"
#include "hnas/core/rng.hpp"
#include "hnas/search/gaussian_process.hpp"
#include "strategies.hpp"

namespace hnas::search::detail {
namespace {

using arch::Genome;
using arch::Primitive;

constexpr uint64_t kEnumerateLimit = uint64_t{1} << 16;
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

class Bayesian final : public Strategy {
 public:
  Bayesian(const SearchSpace& space, int64_t budget, uint64_t seed, const BayesianOptions& options)
      : space_(space), options_(options), rng_(derive_seed(seed, "bo")) {
    HNAS_ASSERT(budget >= 1, "Bayesian optimisation with a budget of " << budget);
    HNAS_CHECK(options.initial_points >= 0, ConfigError,
               "search.bo_initial must be >= 0 (0: automatic), got " << options.initial_points);
    HNAS_CHECK(options.random_pool >= 1, ConfigError,
               "search.bo_random_pool must be >= 1, got " << options.random_pool);
    HNAS_CHECK(options.local_search_starts >= 0, ConfigError,
               "search.bo_local_starts must be >= 0, got " << options.local_search_starts);
    HNAS_CHECK(options.refit_every >= 1, ConfigError,
               "search.bo_refit_every must be >= 1, got " << options.refit_every);
    const auto count = space_.feasible_count(~uint64_t{0});
    budget_ = budget;
    if (count) {
      budget_ = std::min<int64_t>(budget_, static_cast<int64_t>(std::min<uint64_t>(*count, INT64_MAX)));
    } else if (space_.feasible_size() < static_cast<double>(budget_)) {
      budget_ = static_cast<int64_t>(space_.feasible_size());
    }
    if (count && *count <= kEnumerateLimit) {
      candidates_ = space_.enumerate();
      for (size_t i = 0; i < candidates_.size(); ++i) {
        const auto x = space_.encode(candidates_[i]);
        candidate_x_.insert(candidate_x_.end(), x.begin(), x.end());
        candidate_index_.emplace(candidates_[i].to_string(), i);
      }
      candidate_taken_.assign(candidates_.size(), 0);
    }
    int64_t design_size = options.initial_points;
    if (design_size == 0)
      design_size = std::max<int64_t>(1, std::min<int64_t>(std::max<int64_t>(5, 2 * space_.num_layers()), budget_ / 2));
    make_design(std::min(design_size, budget_));
  }

  std::optional<Proposal> propose() override {
    if (proposed_ >= budget_) return std::nullopt;
    Proposal p;
    if (design_next_ < design_.size()) {
      p.genome = design_[design_next_++];
      p.reason = "initial design";
    } else {
      const auto chosen = maximize_acquisition();
      if (chosen) {
        p.genome = chosen->first;
        p.acquisition = chosen->second;
        p.reason = "log-EI";
      } else {
        // No valid outcome yet, so no model: keep the teams busy with space-filling points.
        Rng rng = rng_.fork(static_cast<uint64_t>(proposed_));
        auto g = random_untaken(rng);
        if (!g) {  // the feasible space ran out before the budget
          budget_ = proposed_;
          return std::nullopt;
        }
        p.genome = std::move(*g);
        p.reason = "random (no valid outcome yet)";
      }
    }
    take(p.genome);
    pending_.push_back(p);
    ++proposed_;
    return p;
  }

  void observe(const Proposal& proposal, const Outcome& outcome) override {
    const std::string key = proposal.genome.to_string();
    const auto it = std::find_if(pending_.begin(), pending_.end(), [&](const Proposal& q) {
      return q.rung == proposal.rung && q.stage == proposal.stage && q.genome == proposal.genome;
    });
    HNAS_CHECK(it != pending_.end(), InternalError,
               "bo: observe() of " << key << " (rung " << proposal.rung << ", stage " << proposal.stage
                                   << "), which is not pending");
    pending_.erase(it);
    const bool valid = outcome.valid && std::isfinite(outcome.objective);
    observed_.push_back({proposal.genome, space_.encode(proposal.genome), valid ? outcome.objective : NAN, valid});
    if (valid && (!best_ || outcome.objective > best_->second)) best_ = {proposal.genome, outcome.objective};
  }

  bool done() const override { return proposed_ >= budget_ && pending_.empty(); }

  std::string describe() const override {
    size_t invalid = 0;
    for (const auto& o : observed_) invalid += !o.valid;
    std::ostringstream out;
    out << "bo: " << proposed_ << "/" << budget_ << " proposed, " << observed_.size() << " observed";
    if (invalid > 0) out << " (" << invalid << " invalid)";
    out << ", " << pending_.size() << " pending";
    if (best_) out << ", best " << best_->second << " (" << best_->first.to_string() << ")";
    return out.str();
  }

 private:
  struct Observation {
    Genome genome;
    std::vector<double> x;
    double objective;  // NaN when invalid
    bool valid;
  };
  using Scored = std::pair<Genome, double>;  // candidate and its log-EI

  Genome with_block(const Genome& base, size_t layer, Primitive p) const {
    std::vector<Primitive> layers = base.layers();
    layers[space_.prefix().size() + layer] = p;
    return Genome(std::move(layers));
  }

  bool taken(const Genome& g) const { return taken_.count(g.to_string()) != 0; }
  void take(const Genome& g) {
    taken_.insert(g.to_string());
    if (!candidates_.empty()) candidate_taken_[candidate_index_.at(g.to_string())] = 1;
  }

  // Discrete Latin hypercube: in each batch every layer takes each of its allowed
  // primitives equally often (to within one), in an independently shuffled order; rows
  // that are infeasible or repeat an earlier one are dropped and batches are added until
  // the design is full. Random draws finish it if constraints keep rejecting rows.
  void make_design(int64_t size) {
    Rng rng = rng_.fork(0x64657369676eULL);  // "design"
    const auto& set = space_.options().primitives;
    const size_t n = static_cast<size_t>(space_.num_layers()), k = static_cast<size_t>(size);
    std::vector<std::vector<size_t>> allowed(n);
    for (size_t i = 0; i < n; ++i)
      for (size_t d = 0; d < set.size(); ++d) allowed[i].push_back(d);
    // A fixed first/last layer inside the block has one choice (the space checks the rest).
    auto pin = [&](const std::optional<Primitive>& fixed, bool context_empty, size_t layer) {
      if (!fixed || !context_empty) return;
      const auto at = std::find(set.begin(), set.end(), *fixed);
      if (at != set.end()) allowed[layer] = {static_cast<size_t>(at - set.begin())};
    };
    pin(space_.options().first, space_.prefix().empty(), 0);
    pin(space_.options().last, space_.suffix().empty(), n - 1);

    std::unordered_set<std::string> seen;
    auto shuffle = [&rng](std::vector<size_t>& v) {
      for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.uniform_int(uint64_t{i})]);
    };
    for (int batch = 0; batch < 32 && design_.size() < k; ++batch) {
      std::vector<std::vector<size_t>> columns(n);
      for (size_t i = 0; i < n; ++i) {
        std::vector<size_t> order = allowed[i];
        shuffle(order);  // which primitives get the remainder
        for (size_t r = 0; r < k; ++r) columns[i].push_back(order[r % order.size()]);
        shuffle(columns[i]);
      }
      for (size_t r = 0; r < k && design_.size() < k; ++r) {
        Genome g = space_.prefix();
        std::vector<Primitive> layers = g.layers();
        for (size_t i = 0; i < n; ++i) layers.push_back(set[columns[i][r]]);
        layers.insert(layers.end(), space_.suffix().layers().begin(), space_.suffix().layers().end());
        g = Genome(std::move(layers));
        if (space_.contains(g) && seen.insert(g.to_string()).second) design_.push_back(std::move(g));
      }
    }
    while (design_.size() < k) {
      auto g = random_untaken(rng, &seen);
      HNAS_ASSERT(g.has_value(), "no feasible candidate left for the initial design");
      seen.insert(g->to_string());
      design_.push_back(std::move(*g));
    }
  }

  // A uniformly random feasible candidate not proposed yet (nor in `also`), or nullopt.
  std::optional<Genome> random_untaken(Rng& rng, const std::unordered_set<std::string>* also = nullptr) const {
    auto fresh = [&](const Genome& g) { return !taken(g) && (also == nullptr || also->count(g.to_string()) == 0); };
    if (!candidates_.empty()) {  // small space: draw from the untaken list itself
      std::vector<size_t> open;
      for (size_t i = 0; i < candidates_.size(); ++i)
        if (fresh(candidates_[i])) open.push_back(i);
      if (open.empty()) return std::nullopt;
      return candidates_[open[rng.uniform_int(uint64_t{open.size()})]];
    }
    for (int attempt = 0; attempt < 1'000'000; ++attempt) {
      Genome g = space_.random(rng);
      if (fresh(g)) return g;
    }
    return std::nullopt;
  }

  // Fits the GP to the observations (invalid ones imputed) and conditions it on the
  // pending points; returns the EI incumbent, or nullopt when no outcome is valid yet.
  std::optional<double> update_surrogate() {
    double worst = std::numeric_limits<double>::infinity();
    for (const auto& o : observed_)
      if (o.valid) worst = std::min(worst, o.objective);
    if (!std::isfinite(worst)) return std::nullopt;
    std::vector<std::vector<double>> x;
    std::vector<double> y;
    for (const auto& o : observed_) {
      x.push_back(o.x);
      y.push_back(o.valid ? o.objective : worst);
    }
    // A full fit when the data changed and refit_every proposals have passed since the
    // last one; otherwise the last hyperparameters (still O(n^3) for the new factor). With
    // unchanged data the model stays the same, so concurrent proposals share one surrogate.
    GpFitOptions fit;
    fit.start = hyperparameters_;
    fit.optimize = !hyperparameters_ || (observed_.size() != observations_at_fit_ &&
                                         num_acquisitions_ - acquisitions_at_fit_ >= options_.refit_every);
    if (fit.optimize) observations_at_fit_ = observed_.size(), acquisitions_at_fit_ = num_acquisitions_;
    gp_.fit(x, y, fit);
    hyperparameters_ = gp_.hyperparameters();
    std::vector<GpPrediction> at_data(x.size());
    std::vector<double> rows;
    for (const auto& row : x) rows.insert(rows.end(), row.begin(), row.end());
    gp_.predict(rows.data(), x.size(), at_data.data());
    double incumbent = kNegInf;
    for (const auto& p : at_data) incumbent = std::max(incumbent, p.mean);
    for (const auto& p : pending_) gp_.condition(space_.encode(p.genome), worst);  // CL-min
    return incumbent;
  }

  std::optional<Scored> maximize_acquisition() {
    const auto incumbent = update_surrogate();
    if (!incumbent) return std::nullopt;
    ++num_acquisitions_;
    std::optional<Scored> best;
    if (!candidates_.empty()) {
      best = score_all(*incumbent);
    } else {
      best = score_pool_and_climb(*incumbent);
    }
    return best;
  }

  std::optional<Scored> score_all(double incumbent) const {
    constexpr size_t kChunk = 4096;
    const size_t dim = space_.encoding_size();
    std::vector<GpPrediction> predictions(kChunk);
    std::optional<size_t> best;
    double best_value = kNegInf;
    for (size_t first = 0; first < candidates_.size(); first += kChunk) {
      const size_t count = std::min(kChunk, candidates_.size() - first);
      gp_.predict(&candidate_x_[first * dim], count, predictions.data());
      for (size_t i = 0; i < count; ++i) {
        if (candidate_taken_[first + i]) continue;
        const double value = log_expected_improvement(predictions[i].mean, predictions[i].variance, incumbent);
        if (!best || value > best_value) best = first + i, best_value = value;  // ties: first in block order
      }
    }
    if (!best) return std::nullopt;
    return Scored{candidates_[*best], best_value};
  }

  std::vector<double> score(const std::vector<Genome>& genomes, double incumbent) const {
    const size_t dim = space_.encoding_size();
    std::vector<double> rows;
    rows.reserve(genomes.size() * dim);
    for (const auto& g : genomes) {
      const auto x = space_.encode(g);
      rows.insert(rows.end(), x.begin(), x.end());
    }
    std::vector<GpPrediction> predictions(genomes.size());
    gp_.predict(rows.data(), genomes.size(), predictions.data());
    std::vector<double> values(genomes.size());
    for (size_t i = 0; i < genomes.size(); ++i)
      values[i] = log_expected_improvement(predictions[i].mean, predictions[i].variance, incumbent);
    return values;
  }

  std::optional<Scored> score_pool_and_climb(double incumbent) const {
    Rng rng = rng_.fork(static_cast<uint64_t>(proposed_));
    std::unordered_set<std::string> seen;
    std::vector<Genome> pool;
    for (int64_t i = 0; i < options_.random_pool; ++i) {
      Genome g = space_.random(rng);
      if (!taken(g) && seen.insert(g.to_string()).second) pool.push_back(std::move(g));
    }
    if (pool.empty()) {
      auto g = random_untaken(rng);
      if (!g) return std::nullopt;
      pool.push_back(std::move(*g));
    }
    const std::vector<double> values = score(pool, incumbent);
    std::vector<size_t> order(pool.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] > values[b]; });
    Scored best{pool[order[0]], values[order[0]]};
    const auto& set = space_.options().primitives;
    const size_t n = static_cast<size_t>(space_.num_layers());
    const size_t starts = std::min(order.size(), static_cast<size_t>(options_.local_search_starts));
    for (size_t s = 0; s < starts; ++s) {
      Scored current{pool[order[s]], values[order[s]]};
      // Steepest ascent over feasible, unproposed single-layer mutations.
      for (size_t step = 0; step < 4 * n; ++step) {
        std::vector<Genome> neighbours;
        for (size_t layer = 0; layer < n; ++layer)
          for (Primitive p : set) {
            if (p == current.first[space_.prefix().size() + layer]) continue;
            Genome g = with_block(current.first, layer, p);
            if (space_.contains(g) && !taken(g)) neighbours.push_back(std::move(g));
          }
        if (neighbours.empty()) break;
        const auto next = score(neighbours, incumbent);
        const size_t top = static_cast<size_t>(std::max_element(next.begin(), next.end()) - next.begin());
        if (!(next[top] > current.second)) break;
        current = {neighbours[top], next[top]};
      }
      if (current.second > best.second) best = current;
    }
    return best;
  }

  SearchSpace space_;
  BayesianOptions options_;
  Rng rng_;  // never advanced: each use forks it, keyed by purpose or proposal count
  int64_t budget_ = 0;
  int64_t proposed_ = 0;
  int64_t num_acquisitions_ = 0;     // log-EI proposals so far (paces the hyperparameter refits)
  int64_t acquisitions_at_fit_ = 0;  // num_acquisitions_ at the last full fit
  size_t observations_at_fit_ = 0;   // observations behind the last full fit
  std::vector<Genome> design_;
  size_t design_next_ = 0;
  std::vector<Proposal> pending_;  // in proposal order: the order fantasies are added
  std::vector<Observation> observed_;
  std::optional<std::pair<Genome, double>> best_;
  std::unordered_set<std::string> taken_;  // every genome proposed
  // Small spaces (<= 2^16 feasible candidates): all of them, their encodings (row-major)
  // and whether each was proposed.
  std::vector<Genome> candidates_;
  std::vector<double> candidate_x_;
  std::vector<char> candidate_taken_;
  std::unordered_map<std::string, size_t> candidate_index_;
  GaussianProcess gp_;
  std::optional<GpHyperparameters> hyperparameters_;
};

}  // namespace

std::unique_ptr<Strategy> make_bayesian(const SearchSpace& space, int64_t budget, uint64_t seed,
                                        const BayesianOptions& options) {
  return std::make_unique<Bayesian>(space, budget, seed, options);
}

}  // namespace hnas::search::detail
