// Dot products of single weight rows (any stored format) with one activation vector (kept F32 for
// F32 weights, rounded as llama.cpp does for every other type); the building block of matvec,
// also used by matmul for tiny batches. Internal to kernels/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/q8_activation.h"

namespace moa::kernels {

// Rows ahead of the current one that matvec prefetches: memory-level parallelism beyond what
// the hardware prefetcher keeps in flight for one sequential stream.
inline constexpr int64_t kPrefetchRows = 4;

class RowDot {
 public:
  // Validates the type and the row length; `x` (w.cols values) must outlive this object.
  RowDot(const WeightMatrix& w, const float* x);
  // Dot product of weight row r with x.
  float operator()(int64_t r) const;
  // Asks the memory system for row r (if it exists) ahead of its dot product.
  void prefetch(int64_t r) const;

 private:
  friend bool batch_row_dot(std::span<const RowDot> dots, int64_t r, float* y, int64_t y_stride);
  const void* row(int64_t r) const;

  WeightMatrix w_;
  const float* x_;
  size_t row_bytes_ = 0;
  Q8Activation x_q8_;            // Q8_0 / Q5_0 / Q4_0 only: x rounded to Q8_0 blocks
  Q8KActivation x_q8_k_;         // Q6_K / Q5_K / Q4_K only: x rounded to Q8_K blocks
  std::vector<uint16_t> x_f16_;  // F16 only: x rounded to F16
  std::vector<float> x_bf16_;    // BF16 only: x rounded to BF16 (kept as F32 values)
};

// Batch decode: y[t * y_stride] = dots[t](r) for every t, for up to kMaxQ8Batch dots of one
// Q8_0, Q5_0 or Q4_0 matrix. Each weight block is loaded once and reused for every token, so a
// batch costs little more than one dot. Returns false (doing nothing) for other types.
bool batch_row_dot(std::span<const RowDot> dots, int64_t r, float* y, int64_t y_stride);

}  // namespace moa::kernels
