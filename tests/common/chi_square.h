// Pearson's chi-square goodness-of-fit test for the statistical tests of the samplers (rejection
// sampler, speculative decoding end to end): counts of observed tokens against exact
// probabilities, with the p-value from the regularized upper incomplete gamma function.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace fc::test {

// Regularized upper incomplete gamma Q(a, x) = Gamma(a, x) / Gamma(a): the power series of P
// for x < a + 1, Lentz's continued fraction for Q otherwise (Numerical Recipes, gser / gcf).
inline double gamma_q(double a, double x) {
  if (x <= 0.0) return 1.0;
  const double log_front = -x + a * std::log(x) - std::lgamma(a);
  constexpr double kEps = 1e-15;
  if (x < a + 1.0) {
    double ap = a, del = 1.0 / a, sum = del;
    for (int n = 0; n < 10000 && std::fabs(del) > std::fabs(sum) * kEps; ++n) {
      ap += 1.0;
      del *= x / ap;
      sum += del;
    }
    return 1.0 - sum * std::exp(log_front);
  }
  constexpr double kTiny = 1e-300;
  double b = x + 1.0 - a, c = 1.0 / kTiny, d = 1.0 / b, h = d;
  for (int i = 1; i < 10000; ++i) {
    const double an = -i * (i - a);
    b += 2.0;
    d = an * d + b;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = b + an / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < kEps) break;
  }
  return std::exp(log_front) * h;
}

struct ChiSquare {
  double stat = 0.0;
  int dof = 0;
  double p_value = 1.0;
  int64_t impossible = 0;  // observations in cells of probability 0
};

// Pearson's test of counts against probabilities; cells expecting fewer than 5 observations are
// pooled into one bin (the usual validity condition of the chi-square approximation). Cells of
// probability 0 are left out of the statistic and their observations reported in `impossible`
// (callers require 0: no amount of data makes such an observation fit).
inline ChiSquare chi_square(const std::vector<int64_t>& counts, const std::vector<double>& probs) {
  int64_t n = 0;
  for (int64_t c : counts) n += c;
  ChiSquare r;
  double pooled_e = 0.0, pooled_o = 0.0;
  int bins = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double e = probs[i] * static_cast<double>(n);
    if (probs[i] <= 0.0) {
      r.impossible += counts[i];
      continue;
    }
    if (e < 5.0) {
      pooled_e += e;
      pooled_o += static_cast<double>(counts[i]);
      continue;
    }
    r.stat += (counts[i] - e) * (counts[i] - e) / e;
    ++bins;
  }
  if (pooled_e > 0.0) {
    r.stat += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e;
    ++bins;
  }
  r.dof = bins - 1;
  r.p_value = r.dof > 0 ? gamma_q(0.5 * r.dof, 0.5 * r.stat) : 1.0;
  return r;
}

}  // namespace fc::test
