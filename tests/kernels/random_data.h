// Seeded random inputs shared by the kernel tests.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "gguf/quant.h"
#include "kernels/kernels.h"
#include "support/test_inputs.h"

namespace moa::kernels::testing {

using test::max_abs_diff;

inline std::vector<float> random_floats(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

// A weight matrix stored in `type` (quantized from seeded random values) and its view.
struct StoredMatrix {
  std::vector<uint8_t> bytes;
  WeightMatrix view;
};

inline StoredMatrix make_matrix(gguf::TensorType type, int64_t rows, int64_t cols, uint32_t seed) {
  const std::vector<float> values = random_floats(rows * cols, seed);
  StoredMatrix m;
  const size_t row_bytes = gguf::row_bytes(type, cols);
  m.bytes.resize(row_bytes * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    gguf::quantize_row(type, values.data() + r * cols, m.bytes.data() + r * row_bytes, cols);
  }
  m.view = {type, m.bytes.data(), rows, cols};
  return m;
}

// Error bound of F32 accumulation over `cols` products of magnitude <= 1 (weights and x in
// [-1, 1], quantized scales may exceed 1 slightly).
inline double f32_dot_tolerance(int64_t cols) { return 2e-6 * static_cast<double>(cols) + 1e-5; }

// One attention problem: head counts, queries at q_pos0.., keys 0..n_keys-1, masks per KV head.
struct AttentionCase {
  int64_t n_head, n_head_kv, head_dim;
  int64_t n_query, q_pos0, n_keys;
  std::vector<BandMask> masks;  // empty: dense
  KvType kv_type = KvType::kF32;
  int threads = 2;
};

}  // namespace moa::kernels::testing
