// Helpers shared by the number-format tests: whole-row quantize/dequantize and seeded values.
#pragma once

#include <random>
#include <vector>

#include "gguf/quant.h"

namespace moa::gguf::testing {

inline std::vector<uint8_t> quantize(TensorType type, const std::vector<float>& x) {
  std::vector<uint8_t> bytes(row_bytes(type, static_cast<int64_t>(x.size())));
  quantize_row(type, x.data(), bytes.data(), static_cast<int64_t>(x.size()));
  return bytes;
}

inline std::vector<float> dequantize(TensorType type, const std::vector<uint8_t>& bytes,
                                     int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  dequantize_row(type, bytes.data(), y.data(), n);
  return y;
}

inline std::vector<float> random_values(size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

}  // namespace moa::gguf::testing
