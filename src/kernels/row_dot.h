// Dot products of single weight rows (any stored format) with one F32 activation vector; the
// building block of matvec, also used by matmul for tiny batches. Internal to kernels/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/kernels.h"

namespace moa::kernels {

class RowDot {
 public:
  // Validates the type and the row length; `x` (w.cols values) must outlive this object.
  RowDot(const WeightMatrix& w, const float* x);
  // Dot product of weight row r with x.
  float operator()(int64_t r) const;

 private:
  WeightMatrix w_;
  const float* x_;
  size_t row_bytes_ = 0;
  std::vector<float> x_sums32_;  // Q4_K only: sums of x over each 32-element sub-block
};

// Batch decode on Q8_0 weights: y[t * y_stride] = dot(row r, x[t]) for t < n_tokens
// (n_tokens <= kMaxBatchDot). Each block is widened and scaled once and reused for every token,
// so a batch costs little more than one dot. Returns false (doing nothing) for other types.
inline constexpr int64_t kMaxBatchDot = 8;
bool batch_row_dot(const WeightMatrix& w, int64_t r, const float* x, int64_t n_tokens, float* y,
                   int64_t y_stride);

}  // namespace moa::kernels
