#include "hnas/search/gaussian_process.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "hnas/core/error.hpp"
#include "hnas/core/rng.hpp"

namespace {

using hnas::search::GaussianProcess;
using hnas::search::GpFitOptions;
using hnas::search::GpHyperparameters;

std::vector<std::vector<double>> uniform_points(size_t count, size_t dim, uint64_t seed) {
  hnas::Rng rng(seed);
  std::vector<std::vector<double>> x(count, std::vector<double>(dim));
  for (auto& row : x)
    for (double& v : row) v = rng.uniform();
  return x;
}

double direct_log_ei(double mean, double variance, double best) {
  const double sd = std::sqrt(variance), u = (mean - best) / sd;
  const double cdf = 0.5 * std::erfc(-u / std::sqrt(2.0));
  const double pdf = std::exp(-0.5 * u * u) / std::sqrt(2.0 * M_PI);
  return std::log(sd * (u * cdf + pdf));
}

TEST(GaussianProcess, interpolates_training_points_with_small_noise) {
  const auto x = uniform_points(20, 2, 1);
  std::vector<double> y;
  for (const auto& p : x) y.push_back(3.0 * std::sin(3.0 * p[0]) + p[1] * p[1] + 10.0);
  GaussianProcess gp;
  gp.fit(x, y);
  EXPECT_LT(gp.hyperparameters().noise_variance, 1e-3);
  for (size_t i = 0; i < x.size(); ++i) {
    const auto p = gp.predict(x[i]);
    EXPECT_NEAR(p.mean, y[i], 2e-2) << "point " << i;
    EXPECT_LT(p.variance, 1e-3) << "point " << i;
  }
}

TEST(GaussianProcess, variance_grows_away_from_data) {
  std::vector<std::vector<double>> x;
  std::vector<double> y;
  for (int i = 0; i <= 10; ++i) {
    x.push_back({0.05 * i});
    y.push_back(std::cos(6.0 * x.back()[0]));
  }
  GaussianProcess gp;
  gp.fit(x, y);
  double previous = gp.predict({0.25}).variance;
  for (double at : {0.6, 0.8, 1.0, 1.5, 3.0}) {
    const double v = gp.predict({at}).variance;
    EXPECT_GT(v, previous) << "at " << at;
    previous = v;
  }
  // Far away the prior variance returns (in outcome units).
  const double prior = gp.hyperparameters().signal_variance * gp.outcome_scale() * gp.outcome_scale();
  EXPECT_NEAR(gp.predict({100.0}).variance, prior, 1e-9 * prior);
  EXPECT_NEAR(gp.predict({100.0}).mean, gp.outcome_mean(), 1e-9);
}

TEST(GaussianProcess, lml_gradient_matches_finite_differences) {
  const size_t dim = 3, n = 12;
  const auto rows = uniform_points(n, dim, 2);
  std::vector<double> x, z;
  hnas::Rng rng(3);
  for (const auto& row : rows) {
    x.insert(x.end(), row.begin(), row.end());
    z.push_back(std::sin(4.0 * row[0]) - row[1] + 0.1 * rng.uniform());
  }
  GpHyperparameters hp;
  hp.lengthscales = {0.3, 0.8, 2.5};
  hp.signal_variance = 1.7;
  hp.noise_variance = 0.05;
  std::vector<double> gradient;
  const double lml = hnas::search::gp_log_marginal_likelihood(x, dim, z, hp, &gradient);
  ASSERT_TRUE(std::isfinite(lml));
  ASSERT_EQ(gradient.size(), dim + 2);
  const double h = 1e-5;
  for (size_t k = 0; k < dim + 2; ++k) {
    auto shifted = [&](double delta) {
      GpHyperparameters q = hp;
      const double f = std::exp(delta);
      if (k < dim) q.lengthscales[k] *= f;
      if (k == dim) q.signal_variance *= f;
      if (k == dim + 1) q.noise_variance *= f;
      return hnas::search::gp_log_marginal_likelihood(x, dim, z, q);
    };
    const double numeric = (shifted(h) - shifted(-h)) / (2 * h);
    EXPECT_NEAR(gradient[k], numeric, 1e-6 * (1.0 + std::fabs(numeric))) << "parameter " << k;
  }
}

TEST(GaussianProcess, fitted_lengthscale_short_for_relevant_input_long_for_irrelevant) {
  const auto x = uniform_points(40, 2, 4);
  std::vector<double> y;
  for (const auto& p : x) y.push_back(std::sin(6.0 * p[0]));
  GaussianProcess gp;
  gp.fit(x, y);
  const auto& l = gp.hyperparameters().lengthscales;
  EXPECT_LT(l[0], 0.6);
  EXPECT_GT(l[1], 3.0);
  EXPECT_GT(l[1], 10.0 * l[0]);
}

TEST(GaussianProcess, fit_is_deterministic_and_warm_start_keeps_quality) {
  const auto x = uniform_points(25, 3, 5);
  std::vector<double> y;
  for (const auto& p : x) y.push_back(p[0] * p[1] - std::cos(5.0 * p[2]));
  GaussianProcess a, b, warm;
  a.fit(x, y);
  b.fit(x, y);
  EXPECT_EQ(a.hyperparameters().lengthscales, b.hyperparameters().lengthscales);
  EXPECT_EQ(a.hyperparameters().noise_variance, b.hyperparameters().noise_variance);
  EXPECT_EQ(a.log_marginal_likelihood(), b.log_marginal_likelihood());
  GpFitOptions options;
  options.start = a.hyperparameters();
  options.restarts = 0;
  warm.fit(x, y, options);
  EXPECT_NEAR(warm.log_marginal_likelihood(), a.log_marginal_likelihood(), 1e-3);
  // Fixed hyperparameters are used as given.
  options.optimize = false;
  options.start->noise_variance = 0.5;
  warm.fit(x, y, options);
  EXPECT_EQ(warm.hyperparameters().noise_variance, 0.5);
}

TEST(GaussianProcess, batch_prediction_matches_single_points) {
  const auto x = uniform_points(30, 4, 6);
  std::vector<double> y;
  for (const auto& p : x) y.push_back(p[0] + 2.0 * p[1] * p[2] - p[3]);
  GaussianProcess gp;
  gp.fit(x, y);
  const auto queries = uniform_points(70, 4, 7);  // crosses the internal block size
  std::vector<double> rows;
  for (const auto& q : queries) rows.insert(rows.end(), q.begin(), q.end());
  std::vector<hnas::search::GpPrediction> batch(queries.size());
  gp.predict(rows.data(), queries.size(), batch.data());
  for (size_t i = 0; i < queries.size(); ++i) {
    const auto single = gp.predict(queries[i]);
    EXPECT_NEAR(batch[i].mean, single.mean, 1e-12) << "query " << i;
    EXPECT_NEAR(batch[i].variance, single.variance, 1e-12) << "query " << i;
  }
}

TEST(GaussianProcess, binary_inputs_take_a_fast_path_with_the_same_result) {
  // Layer encodings are 0/1: the kernel then comes from per-input factor tables. A query
  // with 1e-200 for 0 takes the general path at the same point.
  hnas::Rng rng(9);
  std::vector<std::vector<double>> x(40, std::vector<double>(70));  // more than one 64-bit word
  std::vector<double> y;
  for (auto& row : x) {
    for (double& v : row) v = static_cast<double>(rng.uniform_int(uint64_t{2}));
    y.push_back(row[0] - 2.0 * row[65] + row[1] * row[2]);
  }
  GaussianProcess gp;
  gp.fit(x, y);
  for (int q = 0; q < 10; ++q) {
    std::vector<double> binary(70), general(70);
    for (size_t j = 0; j < 70; ++j) {
      binary[j] = static_cast<double>(rng.uniform_int(uint64_t{2}));
      general[j] = binary[j] == 0.0 ? 1e-200 : 1.0;
    }
    const auto a = gp.predict(binary), b = gp.predict(general);
    EXPECT_NEAR(a.mean, b.mean, 1e-9 * (1.0 + std::fabs(b.mean))) << "query " << q;
    EXPECT_NEAR(a.variance, b.variance, 1e-9 * (1.0 + b.variance)) << "query " << q;
  }
  EXPECT_NEAR(gp.predict(x[3]).mean, y[3], 0.05);
}

TEST(GaussianProcess, condition_pins_the_fantasy_and_keeps_hyperparameters) {
  const auto x = uniform_points(15, 2, 8);
  std::vector<double> y;
  for (const auto& p : x) y.push_back(std::sin(5.0 * p[0]) + p[1]);
  GaussianProcess gp;
  gp.fit(x, y);
  const auto hp = gp.hyperparameters();
  const std::vector<double> at = {0.5, 0.5};
  const auto before = gp.predict(at);
  const double fantasy = before.mean - 3.0 * std::sqrt(before.variance) - 0.5;
  gp.condition(at, fantasy);
  EXPECT_EQ(gp.size(), x.size() + 1);
  EXPECT_EQ(gp.hyperparameters().lengthscales, hp.lengthscales);
  // One Bayesian update with observation noise: the posterior at the point is exact.
  const auto after = gp.predict(at);
  const double noise = hp.noise_variance * gp.outcome_scale() * gp.outcome_scale();
  const double gain = before.variance / (before.variance + noise);
  EXPECT_NEAR(after.mean, before.mean + gain * (fantasy - before.mean), 1e-6);
  EXPECT_NEAR(after.variance, before.variance * (1.0 - gain), 1e-6 * before.variance);
  // Far from the fantasy nothing changes.
  EXPECT_NEAR(gp.predict({30.0, 30.0}).mean, gp.outcome_mean(), 1e-12);
}

TEST(GaussianProcess, rejects_inconsistent_input) {
  GaussianProcess gp;
  EXPECT_THROW(gp.fit({}, {}), hnas::ConfigError);
  EXPECT_THROW(gp.fit({{0.0}, {1.0}}, {1.0}), hnas::ConfigError);
  EXPECT_THROW(gp.fit({{0.0}, {1.0, 2.0}}, {1.0, 2.0}), hnas::ConfigError);
  EXPECT_THROW(gp.fit({{0.0}, {1.0}}, {1.0, NAN}), hnas::ConfigError);
}

TEST(GaussianProcess, single_point_and_constant_outcomes_fit) {
  GaussianProcess gp;
  gp.fit({{0.2, 0.4}}, {3.0});
  EXPECT_NEAR(gp.predict({0.2, 0.4}).mean, 3.0, 1e-2);
  gp.fit({{0.0, 0.0}, {1.0, 1.0}, {0.0, 1.0}}, {2.0, 2.0, 2.0});
  EXPECT_NEAR(gp.predict({1.0, 0.0}).mean, 2.0, 1e-9);
  EXPECT_TRUE(std::isfinite(gp.predict({1.0, 0.0}).variance));
}

TEST(LogExpectedImprovement, matches_direct_formula_where_accurate) {
  for (double u = -8.0; u <= 6.0; u += 0.25) {
    for (double variance : {1e-4, 1.0, 9.0}) {
      const double best = 1.5, mean = best + u * std::sqrt(variance);
      const double expected = direct_log_ei(mean, variance, best);
      EXPECT_NEAR(hnas::search::log_expected_improvement(mean, variance, best), expected,
                  1e-9 * (1.0 + std::fabs(expected)))
          << "u = " << u << ", variance = " << variance;
    }
  }
  EXPECT_EQ(hnas::search::log_expected_improvement(2.0, 0.0, 1.0), 0.0);  // log(2 - 1)
  EXPECT_EQ(hnas::search::log_expected_improvement(1.0, 0.0, 2.0), -INFINITY);
}

TEST(LogExpectedImprovement, finite_and_monotone_deep_in_the_tail) {
  double previous = hnas::search::log_h(-40.0);
  ASSERT_TRUE(std::isfinite(previous));
  // Asymptotically h(u) ~ phi(u) / u^2.
  EXPECT_NEAR(previous, -800.0 - 0.5 * std::log(2.0 * M_PI) - 2.0 * std::log(40.0), 1e-2);
  for (double u = -40.0 + 0.01; u <= 6.0; u += 0.01) {
    const double v = hnas::search::log_h(u);
    ASSERT_TRUE(std::isfinite(v)) << "u = " << u;
    ASSERT_GT(v, previous) << "u = " << u;
    previous = v;
  }
  // Where the naive formula underflows, log-EI still orders candidates.
  EXPECT_TRUE(std::isinf(direct_log_ei(-39.0, 1.0, 0.0)));
  EXPECT_GT(hnas::search::log_expected_improvement(-39.0, 1.0, 0.0),
            hnas::search::log_expected_improvement(-39.5, 1.0, 0.0));
}

}  // namespace
