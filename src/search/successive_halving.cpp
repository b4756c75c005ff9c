// SPDX-License-Identifier: Apache-2.0
// Asynchronous successive halving (ASHA, Li et al. 2020): a free team first promotes a
// candidate in the top 1/eta of some rung, highest rung first, and otherwise starts a new
// candidate from the base strategy at the lowest fidelity. No rung waits to be complete.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "hnas/core/check.hpp"
#include "strategies.hpp"

namespace hnas::search::detail {
namespace {

class SuccessiveHalving final : public Strategy {
 public:
  SuccessiveHalving(std::unique_ptr<Strategy> base, const SuccessiveHalvingOptions& options)
      : base_(std::move(base)), options_(options), rungs_(static_cast<size_t>(options.rungs)) {}

  std::optional<Proposal> propose() override {
    for (int r = options_.rungs - 2; r >= 0; --r) {
      const auto index = promotable(r);
      if (!index) continue;
      Entry& entry = rungs_[static_cast<size_t>(r)][*index];
      entry.promoted = true;
      Proposal p = entry.proposal;
      p.rung = r + 1;
      p.reason = "promoted";
      p.acquisition = NAN;
      pending_.add(p);
      return p;
    }
    auto p = base_->propose();
    if (!p) return std::nullopt;
    HNAS_ASSERT(p->rung == 0, "the base of successive halving proposed rung " << p->rung);
    pending_.add(*p);
    return p;
  }

  void observe(const Proposal& proposal, const Outcome& outcome) override {
    Proposal stored = pending_.take(proposal, "successive halving");
    if (stored.rung == 0) base_->observe(stored, outcome);
    rungs_[static_cast<size_t>(stored.rung)].push_back({std::move(stored), outcome, false});
  }

  bool done() const override {
    if (!base_->done() || !pending_.empty()) return false;
    for (int r = 0; r + 1 < options_.rungs; ++r)
      if (promotable(r)) return false;
    return true;
  }

  double fidelity(int rung) const override {
    HNAS_ASSERT(rung >= 0 && rung < options_.rungs, "fidelity of rung " << rung << " of " << options_.rungs);
    return std::pow(options_.eta, rung - (options_.rungs - 1));
  }

  std::string describe() const override {
    std::ostringstream out;
    out << "successive halving (eta " << options_.eta << "): observed";
    for (size_t r = 0; r < rungs_.size(); ++r) out << (r ? "/" : " ") << rungs_[r].size();
    out << " per rung, " << pending_.size() << " pending; " << base_->describe();
    return out.str();
  }

 private:
  struct Entry {
    Proposal proposal;
    Outcome outcome;
    bool promoted = false;
  };

  static bool usable(const Outcome& o) { return o.valid && std::isfinite(o.objective); }

  // The best not-yet-promoted entry among rung r's top floor(n_r / eta) valid results.
  std::optional<size_t> promotable(int r) const {
    const auto& rung = rungs_[static_cast<size_t>(r)];
    // The tiny relative slack keeps e.g. 9 / 3 from rounding below 3.
    const auto top = static_cast<size_t>(std::floor(static_cast<double>(rung.size()) / options_.eta * (1 + 1e-12)));
    if (top == 0) return std::nullopt;
    std::vector<size_t> order;
    for (size_t i = 0; i < rung.size(); ++i)
      if (usable(rung[i].outcome)) order.push_back(i);
    // Stable: ties go to the earlier observation.
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return rung[a].outcome.objective > rung[b].outcome.objective; });
    for (size_t k = 0; k < std::min(top, order.size()); ++k)
      if (!rung[order[k]].promoted) return order[k];
    return std::nullopt;
  }

  std::unique_ptr<Strategy> base_;
  SuccessiveHalvingOptions options_;
  std::vector<std::vector<Entry>> rungs_;  // completed evaluations per rung, in observation order
  PendingProposals pending_;
};

}  // namespace

std::unique_ptr<Strategy> make_successive_halving(std::unique_ptr<Strategy> base,
                                                  const SuccessiveHalvingOptions& options) {
  HNAS_ASSERT(base != nullptr, "successive halving without a base strategy");
  HNAS_CHECK(options.rungs >= 1 && options.rungs <= 8, ConfigError,
             "search.asha_rungs must be in [1, 8], got " << options.rungs);
  HNAS_CHECK(options.eta > 1 && std::isfinite(options.eta), ConfigError,
             "search.asha_eta must be greater than 1, got " << options.eta);
  return std::make_unique<SuccessiveHalving>(std::move(base), options);
}

}  // namespace hnas::search::detail
