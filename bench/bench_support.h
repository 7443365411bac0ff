// Inputs shared by the micro-benchmarks.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace moa::bench {

// n uniform values in [-1, 1), the same for the same seed.
inline std::vector<float> random_floats(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

}  // namespace moa::bench
