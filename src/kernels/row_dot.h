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

}  // namespace moa::kernels
