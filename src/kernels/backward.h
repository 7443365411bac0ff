// Activation gradients of the forward kernels in kernels.h, for the profiler's backward pass
// (METHOD.md section 3): given the forward's inputs and dL/d(output), each returns dL/d(input).
// No weight gradients. Naive double-precision references: kernels/backward_reference.h.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernels.h"

namespace moa::kernels {

// dx for y = rms_norm(x, weight, eps) over n_tokens rows of n: with inv = 1 / sqrt(mean(x^2) +
// eps), dx = inv * weight * dy - x * inv^3 / n * sum(dy * weight * x).
void rms_norm_backward(const float* x, const float* weight, const float* dy, int64_t n,
                       int64_t n_tokens, float eps, float* dx);

// d_gate and d_up for hidden = silu(gate) * up, elementwise over n values.
void swiglu_backward(const float* gate, const float* up, const float* d_hidden, int64_t n,
                     float* d_gate, float* d_up);

// The gradient of kernels::rope: each pair of dx (laid out like rope's x) rotated back by its
// angle, in place (the transpose of the forward rotation).
void rope_backward(float* dx, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                   const int32_t* positions, const RopeParams& params);

// dx[t] = W^T dy[t] for t < n_tokens, the gradient of kernels::matmul: dy is [n_tokens][rows],
// dx is [n_tokens][cols]. Exact: weights dequantized to F32 (any type gguf::dequantize_row
// reads), activations never rounded. Column panels of W are dequantized per thread and
// multiplied by OpenBLAS sgemm; threads write disjoint columns of dx, so results do not depend
// on the thread count.
void matmul_transposed(const WeightMatrix& w, const float* dy, int64_t n_tokens, float* dx,
                       int n_threads);

// W^T as a weight matrix of its own (rows = W's columns) in Q8_0, so that dx = W^T dy runs as
// kernels::matmul(transposed, dy): the int8 GEMM, with dy rounded to Q8_0 blocks like any
// activation. Each block holds 32 consecutive rows of one column of W, rounded as ggml rounds
// Q8_0 (scale = max |value| / 127, F16), so each value moves by at most half a step of its
// block's scale: about 0.4% of the block's largest value.
struct TransposedWeight {
  std::vector<uint8_t> bytes;
  WeightMatrix w;  // type Q8_0, rows = original cols, cols = original rows, data = bytes

  TransposedWeight() = default;
  TransposedWeight(TransposedWeight&&) = default;  // bytes keeps its buffer, so w.data holds
  TransposedWeight& operator=(TransposedWeight&&) = default;
  TransposedWeight(const TransposedWeight&) = delete;  // a copy's w.data would be the original's
  TransposedWeight& operator=(const TransposedWeight&) = delete;
};
// Requires w.rows to be a multiple of 32 (the Q8_0 block along W's columns).
TransposedWeight transpose_to_q8_0(const WeightMatrix& w, int n_threads);
// True when transpose_to_q8_0 makes the backward faster and loses little: W already holds at
// most 8-bit codes (a block type the int8 GEMM multiplies), its rows fill whole Q8_0 blocks, and
// this build and CPU have the vectorized int8 GEMM. F32/F16/BF16 weights stay on exact panels.
bool transpose_to_q8_0_pays(const WeightMatrix& w);

}  // namespace moa::kernels
