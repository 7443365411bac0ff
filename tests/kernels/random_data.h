// Seeded random inputs shared by the kernel tests.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace moa::kernels::testing {

inline std::vector<float> random_floats(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

// Largest |a[i] - b[i]|.
inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double d = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
    worst = d > worst ? d : worst;
  }
  return worst;
}

}  // namespace moa::kernels::testing
