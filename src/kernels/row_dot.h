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

class RowDot {
 public:
  // Validates the type and the row length; `x` (w.cols values) must outlive this object.
  RowDot(const WeightMatrix& w, const float* x);
  // Dot product of weight row r with x.
  float operator()(int64_t r) const;
  // y[i] = dot product of weight row rows[i] with x, for 1 .. kRowStreams rows read at once
  // (each y[i] as operator() gives it).
  void dot_rows(std::span<const int64_t> rows, float* y) const;

 private:
  friend bool batch_row_dot(std::span<const RowDot> dots, int64_t r, float* y, int64_t y_stride);
  const void* row(int64_t r) const;

  WeightMatrix w_;
  const float* x_;
  size_t row_bytes_ = 0;
  Q8Activation x_q8_;               // Q8_0 / Q5_0 / Q4_0 only: x rounded to Q8_0 blocks
  Q8KActivation x_q8_k_;            // Q6_K / Q5_K / Q4_K only: x rounded to Q8_K blocks
  std::vector<float> x_half_grid_;  // F16 / BF16 only: x rounded to that format, kept as F32
};

// Batch decode: y[t * y_stride] = dots[t](r) for every t, for up to kMaxQ8Batch dots of one
// Q8_0, Q5_0 or Q4_0 matrix. Each weight block is loaded once and reused for every token, so a
// batch costs little more than one dot. Returns false (doing nothing) for other types.
bool batch_row_dot(std::span<const RowDot> dots, int64_t r, float* y, int64_t y_stride);

}  // namespace moa::kernels
