// SPDX-License-Identifier: Apache-2.0
#include "hnas/search/gaussian_process.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "hnas/core/check.hpp"

namespace hnas::search {
namespace {

constexpr double kLog2Pi = 1.8378770664093453;  // log(2 pi)
constexpr double kInf = std::numeric_limits<double>::infinity();
// Predictions run in blocks of kBlock points: the triangular solve then runs over
// contiguous block columns (vectorisable) instead of one dependent chain per point.
constexpr size_t kBlock = 32;

// Box bounds of the log-parameters: keep the kernel matrix well conditioned and the
// lengthscales meaningful on inputs in [0, 1] when only a few points are known.
constexpr double kLogLengthscaleMin = -3.912023005428146;  // log 0.02
constexpr double kLogLengthscaleMax = 6.907755278982137;   // log 1000
constexpr double kLogSignalMin = -6.907755278982137;       // log 1e-3
constexpr double kLogSignalMax = 6.907755278982137;
constexpr double kLogNoiseMin = -13.815510557964274;  // log 1e-6: noise >= 1e-6 of the outcome variance
constexpr double kLogNoiseMax = 0.6931471805599453;   // log 2

// Mild log-normal priors (MAP fit). The lengthscale prior grows with the input count,
// as in Hvarfner et al. 2024 (the BoTorch default), so that many inputs do not make every
// pair of points look independent; the noise prior favours small noise on standardised
// outcomes.
constexpr double kLengthscalePriorSd = 1.7320508075688772;  // sqrt(3)
constexpr double kSignalPriorMean = 0.0, kSignalPriorSd = 2.0;
constexpr double kNoisePriorMean = -4.0, kNoisePriorSd = 1.0;
double lengthscale_prior_mean(size_t dim) { return 1.4142135623730951 + 0.5 * std::log(static_cast<double>(dim)); }

// Lower Cholesky factor of the n x n row-major `a`, in place (upper triangle untouched).
// False when `a` is not numerically positive definite.
bool cholesky(std::vector<double>& a, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    double* ri = &a[i * n];
    for (size_t j = 0; j <= i; ++j) {
      const double* rj = &a[j * n];
      double s = ri[j];
      for (size_t k = 0; k < j; ++k) s -= ri[k] * rj[k];
      if (j == i) {
        if (!(s > 0)) return false;
        ri[i] = std::sqrt(s);
      } else {
        ri[j] = s / rj[j];
      }
    }
  }
  return true;
}

// Solves L v = b in place (L lower, n x n row-major).
void forward_solve(const std::vector<double>& l, size_t n, std::vector<double>& b) {
  for (size_t i = 0; i < n; ++i) {
    double s = b[i];
    for (size_t k = 0; k < i; ++k) s -= l[i * n + k] * b[k];
    b[i] = s / l[i * n + i];
  }
}

// Solves L^T v = b in place.
void backward_solve(const std::vector<double>& l, size_t n, std::vector<double>& b) {
  for (size_t i = n; i-- > 0;) {
    b[i] /= l[i * n + i];
    for (size_t k = 0; k < i; ++k) b[k] -= l[i * n + k] * b[i];
  }
}

// Packed-row variants: row i of L holds i + 1 values starting at i (i + 1) / 2.
size_t packed(size_t i) { return i * (i + 1) / 2; }

void packed_forward_solve(const std::vector<double>& l, size_t n, double* b) {
  for (size_t i = 0; i < n; ++i) {
    const double* row = &l[packed(i)];
    double s = b[i];
    for (size_t k = 0; k < i; ++k) s -= row[k] * b[k];
    b[i] = s / row[i];
  }
}

void packed_backward_solve(const std::vector<double>& l, size_t n, double* b) {
  for (size_t i = n; i-- > 0;) {
    const double* row = &l[packed(i)];
    b[i] /= row[i];
    for (size_t k = 0; k < i; ++k) b[k] -= row[k] * b[i];
  }
}

double squared_distance(const double* a, const double* b, size_t dim) {
  double s = 0;
  for (size_t j = 0; j < dim; ++j) {
    const double t = a[j] - b[j];
    s += t * t;
  }
  return s;
}

// Log-parameter vector (log l_1..l_d, log s, log noise) <-> hyperparameters.
std::vector<double> to_theta(const GpHyperparameters& hp) {
  std::vector<double> theta;
  for (double l : hp.lengthscales) theta.push_back(std::log(l));
  theta.push_back(std::log(hp.signal_variance));
  theta.push_back(std::log(hp.noise_variance));
  return theta;
}

GpHyperparameters from_theta(const std::vector<double>& theta) {
  GpHyperparameters hp;
  const size_t dim = theta.size() - 2;
  for (size_t j = 0; j < dim; ++j) hp.lengthscales.push_back(std::exp(theta[j]));
  hp.signal_variance = std::exp(theta[dim]);
  hp.noise_variance = std::exp(theta[dim + 1]);
  return hp;
}

struct Box {
  std::vector<double> lo, hi;
  explicit Box(size_t dim) {
    lo.assign(dim, kLogLengthscaleMin);
    hi.assign(dim, kLogLengthscaleMax);
    lo.push_back(kLogSignalMin);
    hi.push_back(kLogSignalMax);
    lo.push_back(kLogNoiseMin);
    hi.push_back(kLogNoiseMax);
  }
  void clamp(std::vector<double>& theta) const {
    for (size_t k = 0; k < theta.size(); ++k) theta[k] = std::min(hi[k], std::max(lo[k], theta[k]));
  }
};

// The MAP objective to minimise: -(LML + log prior), with its gradient in theta.
double negative_log_posterior(const std::vector<double>& x, size_t dim, const std::vector<double>& z,
                              const std::vector<double>& theta, std::vector<double>& gradient) {
  const double lml = gp_log_marginal_likelihood(x, dim, z, from_theta(theta), &gradient);
  if (!std::isfinite(lml)) return kInf;
  double log_prior = 0;
  auto add_prior = [&](size_t k, double mean, double sd) {
    const double r = (theta[k] - mean) / sd;
    log_prior -= 0.5 * r * r;
    gradient[k] -= r / sd;
  };
  const double mean_l = lengthscale_prior_mean(dim);
  for (size_t j = 0; j < dim; ++j) add_prior(j, mean_l, kLengthscalePriorSd);
  add_prior(dim, kSignalPriorMean, kSignalPriorSd);
  add_prior(dim + 1, kNoisePriorMean, kNoisePriorSd);
  for (double& g : gradient) g = -g;
  return -(lml + log_prior);
}

// Box-projected L-BFGS with a backtracking (Armijo) line search; returns the best value.
double minimize(const std::vector<double>& x, size_t dim, const std::vector<double>& z, const Box& box,
                std::vector<double>& theta, int max_iterations) {
  constexpr size_t kMemory = 8;
  constexpr double kMaxStep = 2.0;  // in log units: larger jumps only risk a singular kernel
  const size_t p = theta.size();
  box.clamp(theta);
  std::vector<double> gradient(p), next(p), next_gradient(p), direction(p), rho;
  std::vector<std::vector<double>> s_hist, y_hist;
  double f = negative_log_posterior(x, dim, z, theta, gradient);
  if (!std::isfinite(f)) return f;
  for (int iteration = 0; iteration < max_iterations; ++iteration) {
    // Two-loop recursion: direction = -H gradient.
    direction = gradient;
    std::vector<double> a(s_hist.size());
    for (size_t m = s_hist.size(); m-- > 0;) {
      double dot = 0;
      for (size_t k = 0; k < p; ++k) dot += s_hist[m][k] * direction[k];
      a[m] = rho[m] * dot;
      for (size_t k = 0; k < p; ++k) direction[k] -= a[m] * y_hist[m][k];
    }
    if (!s_hist.empty()) {
      double sy = 0, yy = 0;
      for (size_t k = 0; k < p; ++k) {
        sy += s_hist.back()[k] * y_hist.back()[k];
        yy += y_hist.back()[k] * y_hist.back()[k];
      }
      for (double& d : direction) d *= sy / yy;
    }
    for (size_t m = 0; m < s_hist.size(); ++m) {
      double dot = 0;
      for (size_t k = 0; k < p; ++k) dot += y_hist[m][k] * direction[k];
      const double b = rho[m] * dot;
      for (size_t k = 0; k < p; ++k) direction[k] += (a[m] - b) * s_hist[m][k];
    }
    for (double& d : direction) d = -d;
    // Drop components that push into an active bound; fall back to steepest descent.
    auto project = [&] {
      double slope = 0, largest = 0;
      for (size_t k = 0; k < p; ++k) {
        if ((theta[k] <= box.lo[k] && direction[k] < 0) || (theta[k] >= box.hi[k] && direction[k] > 0))
          direction[k] = 0;
        slope += direction[k] * gradient[k];
        largest = std::max(largest, std::fabs(direction[k]));
      }
      if (largest > kMaxStep)
        for (double& d : direction) d *= kMaxStep / largest;
      return slope * (largest > kMaxStep ? kMaxStep / largest : 1.0);
    };
    double slope = project();
    if (!(slope < 0)) {
      s_hist.clear(), y_hist.clear(), rho.clear();
      for (size_t k = 0; k < p; ++k) direction[k] = -gradient[k];
      slope = project();
      if (!(slope < -1e-12)) break;  // projected gradient vanishes: a (bound-)stationary point
    }
    double step = (s_hist.empty() && iteration == 0) ? std::min(1.0, 1.0 / std::sqrt(-slope)) : 1.0;
    double f_next = kInf;
    bool accepted = false;
    for (int tries = 0; tries < 30; ++tries, step *= 0.5) {
      for (size_t k = 0; k < p; ++k) next[k] = theta[k] + step * direction[k];
      box.clamp(next);
      double decrease = 0;
      for (size_t k = 0; k < p; ++k) decrease += gradient[k] * (next[k] - theta[k]);
      f_next = negative_log_posterior(x, dim, z, next, next_gradient);
      if (std::isfinite(f_next) && f_next <= f + 1e-4 * decrease) {
        accepted = true;
        break;
      }
    }
    if (!accepted) {
      if (s_hist.empty()) break;
      s_hist.clear(), y_hist.clear(), rho.clear();
      continue;
    }
    std::vector<double> s(p), y(p);
    double sy = 0;
    for (size_t k = 0; k < p; ++k) {
      s[k] = next[k] - theta[k];
      y[k] = next_gradient[k] - gradient[k];
      sy += s[k] * y[k];
    }
    if (sy > 1e-12) {
      if (s_hist.size() == kMemory) {
        s_hist.erase(s_hist.begin()), y_hist.erase(y_hist.begin()), rho.erase(rho.begin());
      }
      s_hist.push_back(s), y_hist.push_back(y), rho.push_back(1.0 / sy);
    }
    const double change = f - f_next;
    theta = next, gradient = next_gradient, f = f_next;
    if (change < 1e-9 * (1.0 + std::fabs(f))) break;
  }
  return f;
}

}  // namespace

double gp_log_marginal_likelihood(const std::vector<double>& x, size_t dim, const std::vector<double>& z,
                                  const GpHyperparameters& hp, std::vector<double>* gradient) {
  const size_t n = z.size();
  HNAS_ASSERT(dim > 0 && hp.lengthscales.size() == dim && x.size() == n * dim, "inconsistent GP sizes");
  std::vector<double> u(x.size());
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < dim; ++j) u[i * dim + j] = x[i * dim + j] / hp.lengthscales[j];
  // kf: the noise-free kernel (kept for the gradient); k: its Cholesky factor.
  std::vector<double> kf(n * n), k(n * n);
  for (size_t a = 0; a < n; ++a) {
    for (size_t b = 0; b <= a; ++b) {
      const double v = hp.signal_variance * std::exp(-0.5 * squared_distance(&u[a * dim], &u[b * dim], dim));
      kf[a * n + b] = kf[b * n + a] = v;
      k[a * n + b] = v;
    }
    k[a * n + a] += hp.noise_variance;
  }
  if (!cholesky(k, n)) return -kInf;
  std::vector<double> alpha = z;
  forward_solve(k, n, alpha);
  double fit_term = 0, log_det = 0;
  for (size_t i = 0; i < n; ++i) {
    fit_term += alpha[i] * alpha[i];
    log_det += std::log(k[i * n + i]);
  }
  backward_solve(k, n, alpha);
  const double lml = -0.5 * fit_term - log_det - 0.5 * static_cast<double>(n) * kLog2Pi;
  if (gradient == nullptr) return lml;

  // dLML/dtheta = 0.5 tr(W dK/dtheta), W = alpha alpha^T - K^-1. K^-1 = L^-T L^-1, with
  // L^-1 built row by row (row i = (e_i - sum_k<i L_ik row_k) / L_ii).
  std::vector<double> linv(n * n, 0.0), w(n * n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    double* row = &linv[i * n];
    row[i] = 1.0;
    for (size_t m = 0; m < i; ++m) {
      const double c = k[i * n + m];
      const double* other = &linv[m * n];
      for (size_t j = 0; j <= m; ++j) row[j] -= c * other[j];
    }
    const double d = k[i * n + i];
    for (size_t j = 0; j <= i; ++j) row[j] /= d;
  }
  for (size_t m = 0; m < n; ++m) {  // lower triangle of K^-1 = sum_m row_m^T row_m
    const double* row = &linv[m * n];
    for (size_t a = 0; a <= m; ++a) {
      const double c = row[a];
      double* out = &w[a * n];
      for (size_t b = 0; b <= a; ++b) out[b] += c * row[b];
    }
  }
  gradient->assign(dim + 2, 0.0);
  double signal = 0, noise = 0;
  for (size_t a = 0; a < n; ++a) {
    noise += alpha[a] * alpha[a] - w[a * n + a];
    signal += (alpha[a] * alpha[a] - w[a * n + a]) * kf[a * n + a];
    for (size_t b = 0; b < a; ++b) {
      // Off-diagonal pairs count twice (W and K are symmetric).
      const double m = 2.0 * (alpha[a] * alpha[b] - w[a * n + b]) * kf[a * n + b];
      signal += m;
      for (size_t j = 0; j < dim; ++j) {
        const double t = u[a * dim + j] - u[b * dim + j];
        (*gradient)[j] += m * t * t;  // dK/dlog l_j = K_f (x_aj - x_bj)^2 / l_j^2
      }
    }
  }
  for (size_t j = 0; j < dim; ++j) (*gradient)[j] *= 0.5;
  (*gradient)[dim] = 0.5 * signal;
  (*gradient)[dim + 1] = 0.5 * noise * hp.noise_variance;
  return lml;
}

void GaussianProcess::fit(const std::vector<std::vector<double>>& x, const std::vector<double>& y,
                          const GpFitOptions& options) {
  HNAS_CHECK(!x.empty() && x.size() == y.size(), ConfigError,
             "GP fit needs one outcome per point and at least one point; got " << x.size() << " points and " << y.size()
                                                                               << " outcomes");
  const size_t dim = x[0].size();
  HNAS_CHECK(dim > 0, ConfigError, "GP points must have at least one input");
  std::vector<double> flat;
  flat.reserve(x.size() * dim);
  for (size_t i = 0; i < x.size(); ++i) {
    HNAS_CHECK(x[i].size() == dim, ConfigError,
               "GP point " << i << " has " << x[i].size() << " inputs; point 0 has " << dim);
    for (double v : x[i]) HNAS_CHECK(std::isfinite(v), ConfigError, "GP point " << i << " has a non-finite input");
    HNAS_CHECK(std::isfinite(y[i]), ConfigError, "GP outcome " << i << " is not finite: " << y[i]);
    flat.insert(flat.end(), x[i].begin(), x[i].end());
  }
  const size_t n = y.size();
  double mean = 0;
  for (double v : y) mean += v;
  mean /= static_cast<double>(n);
  double var = 0;
  for (double v : y) var += (v - mean) * (v - mean);
  var = n > 1 ? var / static_cast<double>(n - 1) : 0.0;
  y_mean_ = mean;
  y_scale_ = var > 1e-300 ? std::sqrt(var) : 1.0;
  std::vector<double> z(n);
  for (size_t i = 0; i < n; ++i) z[i] = (y[i] - y_mean_) / y_scale_;

  const Box box(dim);
  if (options.start)
    HNAS_CHECK(options.start->lengthscales.size() == dim, ConfigError,
               "GP start has " << options.start->lengthscales.size() << " lengthscales for " << dim << " inputs");
  std::vector<double> best_theta;
  if (!options.optimize) {
    HNAS_CHECK(options.start.has_value(), ConfigError, "GP fit without optimisation needs start hyperparameters");
    best_theta = to_theta(*options.start);
    box.clamp(best_theta);
  } else {
    // Fixed starts from the prior median towards short and long lengthscales; the
    // warm start, when given, is tried first and wins ties.
    const double median = std::exp(lengthscale_prior_mean(dim));
    const double starts[][3] = {{median, 1.0, 1e-3}, {0.5, 1.0, 1e-2}, {3.0, 1.0, 1e-4}, {median, 4.0, 1e-1}};
    std::vector<std::vector<double>> thetas;
    if (options.start) thetas.push_back(to_theta(*options.start));
    for (int r = 0; r < std::min<int>(options.restarts, 4); ++r) {
      GpHyperparameters hp;
      hp.lengthscales.assign(dim, starts[r][0]);
      hp.signal_variance = starts[r][1];
      hp.noise_variance = starts[r][2];
      thetas.push_back(to_theta(hp));
    }
    HNAS_CHECK(!thetas.empty(), ConfigError, "GP fit has no starting point (restarts = 0 and no start)");
    double best = kInf;
    for (auto& theta : thetas) {
      const double f = minimize(flat, dim, z, box, theta, options.max_iterations);
      if (f < best || best_theta.empty()) best = f, best_theta = theta;
    }
  }
  hyperparameters_ = from_theta(best_theta);
  dim_ = dim;
  num_points_ = n;
  x_ = std::move(flat);
  z_ = std::move(z);
  factorize();
  log_marginal_likelihood_ = gp_log_marginal_likelihood(x_, dim_, z_, hyperparameters_);
}

bool GaussianProcess::pack(const double* row, uint64_t* bits) const {
  std::fill(bits, bits + words_, uint64_t{0});
  for (size_t j = 0; j < dim_; ++j) {
    if (row[j] == 1.0) {
      bits[j / 64] |= uint64_t{1} << (j % 64);
    } else if (row[j] != 0.0) {
      return false;
    }
  }
  return true;
}

void GaussianProcess::factorize() {
  const size_t n = num_points_;
  scaled_.resize(x_.size());
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < dim_; ++j) scaled_[i * dim_ + j] = x_[i * dim_ + j] / hyperparameters_.lengthscales[j];
  words_ = (dim_ + 63) / 64;
  bits_.assign(n * words_, 0);
  binary_ = true;
  for (size_t i = 0; i < n && binary_; ++i) binary_ = pack(&x_[i * dim_], &bits_[i * words_]);
  const size_t chunks = (dim_ + 7) / 8;
  factors_.assign(chunks * 256, 1.0);
  for (size_t c = 0; c < chunks; ++c)
    for (size_t pattern = 0; pattern < 256; ++pattern)
      for (size_t b = 0; b < 8 && 8 * c + b < dim_; ++b)
        if ((pattern >> b) & 1) {
          const double l = hyperparameters_.lengthscales[8 * c + b];
          factors_[c * 256 + pattern] *= std::exp(-0.5 / (l * l));
        }
  std::vector<double> k(n * n);
  // Jitter only if the fitted noise alone does not make the factorisation succeed.
  for (double jitter = 0;; jitter = jitter == 0 ? 1e-10 : jitter * 10) {
    HNAS_ASSERT(jitter < 1e-2, "GP kernel matrix is not positive definite even with jitter");
    for (size_t a = 0; a < n; ++a) {
      for (size_t b = 0; b <= a; ++b)
        k[a * n + b] = hyperparameters_.signal_variance *
                       std::exp(-0.5 * squared_distance(&scaled_[a * dim_], &scaled_[b * dim_], dim_));
      k[a * n + a] += hyperparameters_.noise_variance + jitter * hyperparameters_.signal_variance;
    }
    if (cholesky(k, n)) break;
  }
  chol_.resize(packed(n));
  for (size_t i = 0; i < n; ++i) std::copy(&k[i * n], &k[i * n] + i + 1, &chol_[packed(i)]);
  alpha_ = z_;
  packed_forward_solve(chol_, n, alpha_.data());
  packed_backward_solve(chol_, n, alpha_.data());
}

void GaussianProcess::condition(const std::vector<double>& x, double y) {
  HNAS_ASSERT(num_points_ > 0, "condition() before fit()");
  HNAS_CHECK(x.size() == dim_ && std::isfinite(y), ConfigError,
             "GP condition point has " << x.size() << " inputs (expected " << dim_ << ") and outcome " << y);
  const size_t n = num_points_;
  std::vector<double> u(dim_);
  for (size_t j = 0; j < dim_; ++j) u[j] = x[j] / hyperparameters_.lengthscales[j];
  // New last row of L: [L^-1 k(X, x), sqrt(k(x, x) + noise - |L^-1 k(X, x)|^2)].
  std::vector<double> row(n + 1);
  for (size_t i = 0; i < n; ++i)
    row[i] = hyperparameters_.signal_variance * std::exp(-0.5 * squared_distance(&scaled_[i * dim_], u.data(), dim_));
  packed_forward_solve(chol_, n, row.data());
  double rest = hyperparameters_.signal_variance + hyperparameters_.noise_variance;
  for (size_t i = 0; i < n; ++i) rest -= row[i] * row[i];
  // Rounding can eat the noise term for a point that repeats an old one.
  row[n] = std::sqrt(std::max(rest, 1e-12 * hyperparameters_.signal_variance));
  chol_.insert(chol_.end(), row.begin(), row.end());
  x_.insert(x_.end(), x.begin(), x.end());
  scaled_.insert(scaled_.end(), u.begin(), u.end());
  bits_.resize(bits_.size() + words_);
  binary_ = binary_ && pack(x.data(), &bits_[n * words_]);
  z_.push_back((y - y_mean_) / y_scale_);
  num_points_ = n + 1;
  alpha_ = z_;
  packed_forward_solve(chol_, num_points_, alpha_.data());
  packed_backward_solve(chol_, num_points_, alpha_.data());
}

void GaussianProcess::kernel_block(const double* rows, size_t count, double* kt) const {
  const size_t n = num_points_;
  const double s = hyperparameters_.signal_variance;
  std::vector<uint64_t> bits(kBlock * words_);
  bool binary = binary_;
  for (size_t b = 0; b < count && binary; ++b) binary = pack(&rows[b * dim_], &bits[b * words_]);
  if (binary) {
    const size_t chunks = (dim_ + 7) / 8;
    for (size_t i = 0; i < n; ++i) {
      const uint64_t* xi = &bits_[i * words_];
      for (size_t b = 0; b < count; ++b) {
        double k = s;
        for (size_t c = 0; c < chunks; ++c) {
          const uint64_t differ = xi[c / 8] ^ bits[b * words_ + c / 8];
          k *= factors_[c * 256 + ((differ >> (8 * (c % 8))) & 255)];
        }
        kt[i * kBlock + b] = k;
      }
    }
    return;
  }
  std::vector<double> u(count * dim_);
  for (size_t b = 0; b < count; ++b)
    for (size_t j = 0; j < dim_; ++j) u[b * dim_ + j] = rows[b * dim_ + j] / hyperparameters_.lengthscales[j];
  for (size_t i = 0; i < n; ++i)
    for (size_t b = 0; b < count; ++b)
      kt[i * kBlock + b] = s * std::exp(-0.5 * squared_distance(&scaled_[i * dim_], &u[b * dim_], dim_));
}

GpPrediction GaussianProcess::predict(const std::vector<double>& x) const {
  HNAS_CHECK(x.size() == dim_, ConfigError, "GP predict point has " << x.size() << " inputs, expected " << dim_);
  GpPrediction out;
  predict(x.data(), 1, &out);
  return out;
}

void GaussianProcess::predict(const double* rows, size_t count, GpPrediction* out) const {
  HNAS_ASSERT(num_points_ > 0, "predict() before fit()");
  const size_t n = num_points_;
  const double s = hyperparameters_.signal_variance;
  std::vector<double> kt(n * kBlock);
  for (size_t first = 0; first < count; first += kBlock) {
    const size_t m = std::min(kBlock, count - first);
    kernel_block(rows + first * dim_, m, kt.data());
    double mean[kBlock] = {}, explained[kBlock] = {};
    for (size_t i = 0; i < n; ++i) {
      const double a = alpha_[i];
      for (size_t b = 0; b < kBlock; ++b) mean[b] += a * kt[i * kBlock + b];
    }
    for (size_t i = 0; i < n; ++i) {  // kt <- L^-1 kt
      const double* lrow = &chol_[packed(i)];
      double* ri = &kt[i * kBlock];
      size_t k = 0;
      for (; k + 4 <= i; k += 4) {  // four rows per pass: fewer loads and stores of ri
        const double c0 = lrow[k], c1 = lrow[k + 1], c2 = lrow[k + 2], c3 = lrow[k + 3];
        const double *r0 = &kt[k * kBlock], *r1 = r0 + kBlock, *r2 = r1 + kBlock, *r3 = r2 + kBlock;
        for (size_t b = 0; b < kBlock; ++b) ri[b] -= (c0 * r0[b] + c1 * r1[b]) + (c2 * r2[b] + c3 * r3[b]);
      }
      for (; k < i; ++k) {
        const double c = lrow[k];
        const double* rk = &kt[k * kBlock];
        for (size_t b = 0; b < kBlock; ++b) ri[b] -= c * rk[b];
      }
      const double inv = 1.0 / lrow[i];
      for (size_t b = 0; b < kBlock; ++b) {
        ri[b] *= inv;
        explained[b] += ri[b] * ri[b];
      }
    }
    for (size_t b = 0; b < m; ++b) {
      out[first + b].mean = y_mean_ + y_scale_ * mean[b];
      out[first + b].variance = y_scale_ * y_scale_ * std::max(s - explained[b], 0.0);
    }
  }
}

double log_h(double u) {
  if (u >= -5.0) {
    const double cdf = 0.5 * std::erfc(-u / std::sqrt(2.0));
    const double pdf = std::exp(-0.5 * u * u - 0.5 * kLog2Pi);
    return std::log(u * cdf + pdf);
  }
  // h(u) = phi(u) (1 - t m(t)), t = -u, with the Mills ratio m(t) = 1 / (t + q) and
  // q = 1 / (t + 2 / (t + 3 / (t + ...))) (Laplace's continued fraction). Then
  // 1 - t m(t) = q / (t + q) exactly, with no cancellation. 30 terms reach double
  // precision for t >= 5.
  const double t = -u;
  double r = 0;
  for (int k = 30; k >= 2; --k) r = k / (t + r);
  const double q = 1.0 / (t + r);
  return -0.5 * u * u - 0.5 * kLog2Pi + std::log(q) - std::log(t + q);
}

double log_expected_improvement(double mean, double variance, double best) {
  if (!(variance > 0)) return mean > best ? std::log(mean - best) : -kInf;
  const double sd = std::sqrt(variance);
  return std::log(sd) + log_h((mean - best) / sd);
}

}  // namespace hnas::search
