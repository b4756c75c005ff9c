// SPDX-License-Identifier: Apache-2.0
// The baselines: exhaustive enumeration (for spaces small enough to evaluate completely)
// and uniform random sampling without replacement.
#include <set>
#include <sstream>
#include <utility>

#include "hnas/core/check.hpp"
#include "hnas/core/log.hpp"
#include "hnas/core/rng.hpp"
#include "strategies.hpp"

namespace hnas::search::detail {
namespace {

using arch::Genome;

// Proposes a fixed list of candidates in order; shared by both baselines when the list is known up front.
class ListStrategy : public Strategy {
 public:
  ListStrategy(const char* name, std::vector<Genome> candidates)
      : name_(name), candidates_(std::move(candidates)), planned_(candidates_.size()) {}

  std::optional<Proposal> propose() override {
    if (proposed_ == planned_) return std::nullopt;
    Proposal p;
    p.genome = next_candidate();
    p.reason = name_;
    pending_.add(p);
    ++proposed_;
    return p;
  }

  void observe(const Proposal& proposal, const Outcome& outcome) override {
    pending_.take(proposal, name_);
    ++observed_;
  }

  bool done() const override { return proposed_ == planned_ && pending_.empty(); }

  std::string describe() const override {
    std::ostringstream out;
    out << name_ << ": " << proposed_ << "/" << planned_ << " proposed, " << observed_ << " observed";
    return out.str();
  }

 protected:
  virtual Genome next_candidate() { return candidates_[proposed_]; }

  const char* name_;
  std::vector<Genome> candidates_;
  size_t planned_;
  size_t proposed_ = 0;
  size_t observed_ = 0;
  PendingProposals pending_;
};

// Draws candidates lazily, rejecting repeats: for spaces too large to list.
class SampledRandom final : public ListStrategy {
 public:
  SampledRandom(SearchSpace space, size_t budget, Rng rng)
      : ListStrategy("random", {}), space_(std::move(space)), rng_(rng) {
    planned_ = budget;
  }

 private:
  Genome next_candidate() override {
    // The space holds more than the budget (or 2^20) candidates, so repeats are rare.
    for (int attempt = 0; attempt < 10'000'000; ++attempt) {
      Genome g = space_.random(rng_);
      if (seen_.insert(g.to_string()).second) return g;
    }
    HNAS_ASSERT(false, "random search found no new candidate in 10^7 draws");
    return {};
  }

  SearchSpace space_;
  Rng rng_;
  std::set<std::string> seen_;
};

// "45.2s", "3m05s", "12h00m", "4.2e+05 hours": a duration of any size.
std::string format_estimate(double seconds) {
  if (seconds < 1e6) return log::format_duration(seconds);
  return log::format("%.2g hours", seconds / 3600.0);
}

}  // namespace

std::unique_ptr<Strategy> make_exhaustive(const SearchSpace& space, int64_t budget, double seconds_per_evaluation) {
  HNAS_ASSERT(budget >= 1, "exhaustive search with a budget of " << budget);
  const auto count = space.feasible_count(~uint64_t{0});
  if (!count || *count > static_cast<uint64_t>(budget)) {
    std::ostringstream out;
    out << "strategy exhaustive: the search space holds ";
    if (count) {
      out << *count;
    } else {
      out << "about " << log::format("%.3g", space.feasible_size());
    }
    out << " feasible candidates of " << space.prefix().size() + space.suffix().size() + space.num_layers()
        << " layers, more than search.max_evaluations = " << budget;
    if (seconds_per_evaluation > 0) {
      out << "; an exhaustive search would take about "
          << format_estimate(space.feasible_size() * seconds_per_evaluation) << " of one team at an estimated "
          << log::format("%.3g", seconds_per_evaluation) << " s per evaluation";
    }
    out << ". Use search.strategy = bo (Bayesian optimisation), or raise search.max_evaluations";
    throw ConfigError(out.str());
  }
  return std::make_unique<ListStrategy>("exhaustive", space.enumerate());
}

std::unique_ptr<Strategy> make_random(const SearchSpace& space, int64_t budget, uint64_t seed) {
  HNAS_ASSERT(budget >= 1, "random search with a budget of " << budget);
  Rng rng(derive_seed(seed, "random search"));
  const auto count = space.feasible_count(~uint64_t{0});
  const auto wanted = static_cast<uint64_t>(budget);
  if (!count || (*count > wanted && *count > (uint64_t{1} << 20)))
    return std::make_unique<SampledRandom>(space, static_cast<size_t>(budget), rng);
  // Small space: a shuffled prefix of the full list is a uniform sample without replacement.
  std::vector<Genome> all = space.enumerate();
  for (size_t i = all.size(); i > 1; --i) std::swap(all[i - 1], all[rng.uniform_int(uint64_t{i})]);
  if (all.size() > wanted) all.resize(static_cast<size_t>(wanted));
  return std::make_unique<ListStrategy>("random", std::move(all));
}

}  // namespace hnas::search::detail
