// SPDX-License-Identifier: Apache-2.0
// End- and middle-layer incremental search (paper section 3.2): N/n stages, each searching
// an n-layer block inside the best candidate of the stage before, which stays frozen.
#include <cmath>
#include <sstream>

#include "hnas/core/check.hpp"
#include "hnas/core/log.hpp"
#include "hnas/core/rng.hpp"
#include "strategies.hpp"

namespace hnas::search::detail {
namespace {

using arch::Genome;

class Incremental final : public Strategy {
 public:
  explicit Incremental(const StrategyOptions& options) : options_(options) {
    // Built first: it validates num_layers (and the rest) before num_layers is used as a divisor.
    const SearchSpace first_space(options.space);
    const int64_t n = options.space.num_layers;
    const int64_t target = options.target_layers;
    HNAS_CHECK(target > 0 && target % n == 0 && target <= static_cast<int64_t>(Genome::kMaxLayers), ConfigError,
               "search.target_layers must be a positive multiple of search.num_layers ("
                   << n << ") of at most " << Genome::kMaxLayers << " layers, got " << target);
    num_stages_ = target / n;
    HNAS_CHECK(options.max_evaluations >= num_stages_, ConfigError,
               "search.max_evaluations (" << options.max_evaluations << ") must be at least the number of "
                                          << strategy_name(options.kind) << " stages, search.target_layers / "
                                          << "search.num_layers = " << num_stages_);
    stage_budget_ = options.max_evaluations / num_stages_;
    start_stage(0, first_space);
  }

  std::optional<Proposal> propose() override {
    while (!finished_) {
      if (auto inner = inner_->propose()) {
        Proposal outer = *inner;
        outer.stage = static_cast<int>(stage_);
        pending_.add(outer, std::move(*inner));
        return outer;
      }
      // The next stage needs this stage's best, so wait for its pending results.
      if (!inner_->done()) return std::nullopt;
      advance();
    }
    return std::nullopt;
  }

  void observe(const Proposal& proposal, const Outcome& outcome) override {
    const Proposal inner = pending_.take(proposal, strategy_name(options_.kind));
    inner_->observe(inner, outcome);
    ++num_observed_;
    if (outcome.valid && std::isfinite(outcome.objective) && (!stage_best_ || outcome.objective > best_objective_)) {
      stage_best_ = proposal.genome;
      best_objective_ = outcome.objective;
    }
    if (inner_->done()) advance();
  }

  bool done() const override { return finished_ && pending_.empty(); }

  std::string describe() const override {
    std::ostringstream out;
    out << strategy_name(options_.kind) << ": stage " << stage_ + 1 << "/" << num_stages_ << ", " << num_observed_
        << " observed";
    if (stage_best_) out << ", stage best " << best_objective_ << " (" << stage_best_->to_string() << ")";
    if (finished_) out << ", finished";
    out << "; " << inner_->describe();
    return out.str();
  }

 private:
  void start_stage(int64_t stage, const SearchSpace& space) {
    stage_ = stage;
    stage_best_.reset();
    // Exhaustive when the block space fits the stage budget: BO cannot do better there.
    const auto count = space.feasible_count();
    if (count && *count <= static_cast<uint64_t>(stage_budget_)) {
      inner_ = make_exhaustive(space, stage_budget_, options_.seconds_per_evaluation);
    } else {
      const uint64_t seed = derive_seed(options_.seed, "incremental stage " + std::to_string(stage));
      inner_ = make_bayesian(space, stage_budget_, seed, options_.bayesian);
    }
  }

  // Called when the stage's inner search is done: freeze its best and open the next stage.
  void advance() {
    if (!stage_best_) {
      log::warn(log::format("%s search: stage %lld/%lld produced no valid result; the search stops here",
                            strategy_name(options_.kind), static_cast<long long>(stage_ + 1),
                            static_cast<long long>(num_stages_)));
      finished_ = true;
      return;
    }
    if (stage_ + 1 == num_stages_) {
      finished_ = true;
      return;
    }
    const auto& layers = stage_best_->layers();
    Genome prefix = *stage_best_, suffix;
    if (options_.kind == StrategyKind::MiddleIncremental) {
      const size_t head = (layers.size() + 1) / 2;
      prefix = Genome({layers.begin(), layers.begin() + static_cast<std::ptrdiff_t>(head)});
      suffix = Genome({layers.begin() + static_cast<std::ptrdiff_t>(head), layers.end()});
    }
    try {
      start_stage(stage_ + 1, SearchSpace(options_.space, prefix, suffix));
    } catch (const ConfigError& e) {
      // The frozen layers can make the constraints unsatisfiable (e.g. the attention fraction).
      log::warn(log::format("%s search: stage %lld has no feasible candidate around %s (%s); the search stops here",
                            strategy_name(options_.kind), static_cast<long long>(stage_ + 2),
                            stage_best_->to_string().c_str(), e.what()));
      finished_ = true;
    }
  }

  StrategyOptions options_;
  int64_t num_stages_ = 1;
  int64_t stage_budget_ = 1;
  int64_t stage_ = 0;
  std::unique_ptr<Strategy> inner_;
  PendingProposals pending_;  // outer proposal -> the inner strategy's own
  std::optional<Genome> stage_best_;
  double best_objective_ = 0;
  int64_t num_observed_ = 0;
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<Strategy> make_incremental(const StrategyOptions& options) {
  HNAS_ASSERT(options.kind == StrategyKind::EndIncremental || options.kind == StrategyKind::MiddleIncremental,
              "make_incremental for strategy " << strategy_name(options.kind));
  return std::make_unique<Incremental>(options);
}

}  // namespace hnas::search::detail
