// SPDX-License-Identifier: Apache-2.0
// The Gaussian-process surrogate of Bayesian optimisation: an exact GP with an ARD RBF
// kernel (one lengthscale per input), a signal variance and homoscedastic noise, on
// standardised outcomes; plus the log expected-improvement acquisition. Plain dense
// linear algebra (Cholesky, triangular solves): meant for the few hundred observations
// of an architecture search, not for large data.
// Cost with n observations in d inputs: a hyperparameter fit is O(starts * iterations *
// (n^3 + n^2 d)); fixed hyperparameters O(n^3); a prediction O(n d + n^2); conditioning on
// one more point O(n^2 + n d). Measured (one core, -O3): a fit to 100 points in 16 inputs
// takes ~35 ms; predicting all 2^16 points of a 16-layer space ~80 ms.
// Rank-local values: a GaussianProcess is not shared between threads while it changes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace hnas::search {

/// Hyperparameters of the kernel k(a, b) = s * exp(-0.5 * sum_j ((a_j - b_j) / l_j)^2) plus
/// noise on the diagonal. Variances refer to the standardised outcomes (unit variance).
struct GpHyperparameters {
  std::vector<double> lengthscales;  ///< l_j, in input units, one per input
  double signal_variance = 1.0;      ///< s
  double noise_variance = 1e-2;      ///< homoscedastic observation noise
};

struct GpFitOptions {
  bool optimize = true;     ///< false: take `start` as the hyperparameters (O(n^3), no search)
  int restarts = 3;         ///< fixed starting points besides `start` (at most 4 are defined)
  int max_iterations = 60;  ///< L-BFGS iterations per start
  /// Warm start (tried first), e.g. the previous fit's result; required when !optimize.
  std::optional<GpHyperparameters> start;
};

/// Predictive distribution of the latent function (noise excluded), in outcome units.
struct GpPrediction {
  double mean = 0;
  double variance = 0;
};

class GaussianProcess {
 public:
  /// Fits to points `x` (all of one length d >= 1) and outcomes `y` (finite, one per point;
  /// n >= 1). Outcomes are standardised (mean 0, sd 1; sd 1 when they do not vary); the
  /// hyperparameters maximise the log marginal likelihood plus mild log-normal priors
  /// within box bounds (lengthscales [0.02, 1000], signal [1e-3, 1e3], noise [1e-6, 2]),
  /// by L-BFGS on log-parameters from `start` and `restarts` fixed starting points.
  /// Deterministic. Throws ConfigError for inconsistent sizes or non-finite values.
  void fit(const std::vector<std::vector<double>>& x, const std::vector<double>& y, const GpFitOptions& options = {});

  /// Adds one observation with the hyperparameters and the standardisation unchanged,
  /// e.g. a "fantasy" outcome for a pending point. Call after fit().
  void condition(const std::vector<double>& x, double y);

  GpPrediction predict(const std::vector<double>& x) const;
  /// Predicts `count` points stored row after row in `rows` (count * dim() values) into
  /// `out`; faster than one call per point.
  void predict(const double* rows, size_t count, GpPrediction* out) const;

  /// Log marginal likelihood of the standardised outcomes given to the last fit(), at the
  /// fitted hyperparameters (priors excluded; later condition() calls not included).
  double log_marginal_likelihood() const { return log_marginal_likelihood_; }
  const GpHyperparameters& hyperparameters() const { return hyperparameters_; }
  size_t size() const { return num_points_; }  ///< observations, conditioned ones included
  size_t dim() const { return dim_; }
  double outcome_mean() const { return y_mean_; }    ///< the standardisation's shift
  double outcome_scale() const { return y_scale_; }  ///< and its scale (sd)

 private:
  void factorize();  // L and alpha from x_, z_ and hyperparameters_
  // Packs a row of 0/1 inputs into words_ bit words; false if some input is not 0 or 1.
  bool pack(const double* row, uint64_t* bits) const;
  // k(x_i, query b) for every training point i and the `count` (<= 32) queries in `rows`,
  // into kt[i * 32 + b].
  void kernel_block(const double* rows, size_t count, double* kt) const;

  size_t dim_ = 0, num_points_ = 0;
  std::vector<double> x_;       // num_points_ x dim_, row-major
  std::vector<double> scaled_;  // x_ divided by the lengthscales
  // Inputs that are all 0 or 1 (layer encodings) make the kernel a product of one factor
  // per differing input: looked up 8 inputs at a time, instead of an exp per pair.
  bool binary_ = false;
  size_t words_ = 0;
  std::vector<uint64_t> bits_;   // training inputs packed, words_ per point
  std::vector<double> factors_;  // ceil(dim_ / 8) tables of 256 products of exp(-0.5 / l_j^2)
  std::vector<double> z_;        // standardised outcomes
  std::vector<double> chol_;     // lower Cholesky factor of K + noise I, rows packed (row i: i + 1 values)
  std::vector<double> alpha_;    // (K + noise I)^-1 z
  GpHyperparameters hyperparameters_;
  double y_mean_ = 0, y_scale_ = 1;
  double log_marginal_likelihood_ = 0;
};

/// Log marginal likelihood of outcomes `z` (used as given: standardise them first) at
/// points `x` (n rows of `dim` values, row-major) under `hp`. With `gradient`, also its
/// gradient with respect to (log l_1, ..., log l_d, log signal, log noise). Returns -inf
/// when the kernel matrix is not positive definite.
double gp_log_marginal_likelihood(const std::vector<double>& x, size_t dim, const std::vector<double>& z,
                                  const GpHyperparameters& hp, std::vector<double>* gradient = nullptr);

/// log EI for maximisation, log E[max(f - best, 0)] with f ~ N(mean, variance):
/// log(sd) + log(h(u)), u = (mean - best) / sd, h(u) = u Phi(u) + phi(u). Finite and
/// increasing in u far into the tail (h is taken from a continued fraction of the Mills
/// ratio there, never as the difference of two tiny numbers). -inf when variance <= 0 and
/// mean <= best.
double log_expected_improvement(double mean, double variance, double best);
/// log h(u) alone (the standard-normal case of the above).
double log_h(double u);

}  // namespace hnas::search
