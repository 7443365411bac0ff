// Helpers of the backward-kernel tests: float/double conversion, relative errors and central
// finite differences of a scalar loss in double precision.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

namespace moa::kernels::testing {

inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

inline double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

// max |got - want| relative to the largest |want| (so tiny entries do not dominate), or to
// `floor` where want is all (near) zero.
inline double relative_error(const std::vector<float>& got, const std::vector<double>& want,
                             double floor = 1e-300) {
  double worst = 0.0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    worst = std::max(worst, std::fabs(got[i] - want[i]));
  }
  return worst / std::max(max_abs(want), floor);
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double sum = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) sum += a[i] * b[i];
  return sum;
}

// dL/dx by central differences with step h, for every element of x.
inline std::vector<double> numeric_gradient(
    std::vector<double> x, const std::function<double(const std::vector<double>&)>& loss,
    double h = 1e-5) {
  std::vector<double> grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = loss(x);
    x[i] = saved - h;
    const double down = loss(x);
    x[i] = saved;
    grad[i] = (up - down) / (2.0 * h);
  }
  return grad;
}

// max |numeric - analytic| relative to the largest |analytic|.
inline double gradient_error(const std::vector<double>& numeric,
                             const std::vector<double>& analytic) {
  double worst = 0.0;
  for (size_t i = 0; i < numeric.size(); ++i) {
    worst = std::max(worst, std::fabs(numeric[i] - analytic[i]));
  }
  return worst / std::max(max_abs(analytic), 1e-300);
}

}  // namespace moa::kernels::testing
