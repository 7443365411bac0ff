// Activations rounded the way llama.cpp pairs them with the weight type: to F16 for F16 weights,
// to BF16 for BF16 weights, to Q8_0 blocks (32 values sharing one F16-rounded scale) for Q8_0,
// Q5_0 and Q4_0 weights, to Q8_K blocks (256 values sharing one F32 scale) for Q6_K, Q5_K and
// Q4_K weights. The row dots then multiply small integers by int8 (AVX-512 VNNI / BW) instead of
// widening every weight to F32, which is what keeps quantized decode memory-bound on a 2-core
// CPU. Every path (matvec, batch decode, prefill GEMM) uses the same rounded activation, so
// prefill, decode and batches agree to F32 accumulation order. Internal to kernels/.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "gguf/types.h"
#include "util/error.h"

namespace moa::kernels {

// True for the weight types whose dot products take Q8_0-rounded activations (Q8_0, Q5_0, Q4_0).
bool uses_q8_activation(gguf::TensorType type);
// True for the weight types whose dot products take Q8_K-rounded activations (Q6_K, Q5_K, Q4_K).
bool uses_q8_k_activation(gguf::TensorType type);
// True for every weight type whose dot products take a rounded activation (all but F32).
bool rounds_activation(gguf::TensorType type);

// One activation vector in Q8_0 blocks: scale[b] * qs[32 b + i] approximates x[32 b + i].
struct Q8Activation {
  std::vector<int8_t> qs;
  std::vector<float> scales;  // F16-rounded like ggml's block_q8_0.d
  // 8 int32 per block: minus the sum of its qs, then 7 zeros. Seeded into a block's vpdpbusd
  // lanes (shifted by the weight's offset) it takes back the offset of Q4_0/Q5_0 weight codes.
  std::vector<int32_t> negated_sums;
};

// One activation vector in Q8_K blocks (ggml's block_q8_K): scales[b] * qs[256 b + i]
// approximates x[256 b + i]; sums16[g] is the sum of qs over values 16 g .. 16 g + 15.
struct Q8KActivation {
  std::vector<int8_t> qs;
  std::vector<float> scales;
  std::vector<int16_t> sums16;
  // Q4_K's nibble order: in every 128 values qs holds 0-31, 64-95, 32-63, 96-127, so the low and
  // high nibbles of 64 stored bytes meet their activations in one load each. Q4_K and Q5_K dots
  // need it, Q6_K dots the natural order.
  bool q4_k_order = false;
};

// Rows a *_rows dot reads at once: separate memory streams, where one core reading one sequential
// stream keeps too few cache misses in flight (kernels/stream_prefetch.h).
inline constexpr size_t kRowStreams = 4;

// f.template operator()<R>() with R = count (1 .. kRowStreams), compiled per count; throws for
// any other count.
template <class F>
void with_row_count(size_t count, F&& f) {
  if (count == 0 || count > kRowStreams)
    fail("row dot: {} rows, expected 1 to {}", count, kRowStreams);
  switch (count) {
    case 1:
      return f.template operator()<1>();
    case 2:
      return f.template operator()<2>();
    case 3:
      return f.template operator()<3>();
    default:
      return f.template operator()<4>();
  }
}
static_assert(kRowStreams == 4, "with_row_count covers 1 .. 4 rows");

// The first kRows of `rows` as arrays of a format's blocks.
template <class Block, int kRows>
std::array<const Block*, kRows> rows_as(std::span<const void* const> rows) {
  std::array<const Block*, kRows> blocks;
  for (int r = 0; r < kRows; ++r)
    blocks[static_cast<size_t>(r)] = static_cast<const Block*>(rows[r]);
  return blocks;
}

// Rounds x (n values, n a multiple of 256) as ggml's quantize_row_q8_K_ref: per block the value
// of largest magnitude m maps to -127, q = min(127, nearest_even(x * -127 / m)), scale = m / -127.
void quantize_activation_q8_k(const float* x, int64_t n, Q8KActivation& out);

// Puts a natural-order activation into Q4_K's nibble order (sums16 stay in natural order).
void order_for_q4_k(Q8KActivation& x);
// True for the types whose dots take that order (Q4_K, Q5_K).
bool uses_q4_k_order(gguf::TensorType type);

// Dot product of one stored Q6_K, Q5_K or Q4_K row (n values) with a Q8_K activation in the order
// the type needs: integer sums per block, scaled once per block.
float dot_q8_k_activation(gguf::TensorType type, const void* row, const Q8KActivation& x,
                          int64_t n);
// The same for 1 .. kRowStreams rows of one type read at once, as dot_q8_activation_rows.
void dot_q8_k_activation_rows(gguf::TensorType type, std::span<const void* const> rows,
                              const Q8KActivation& x, int64_t n, float* y);

// Rounds x (n values, n a multiple of 32) to Q8_0 blocks: scale = F16(max|x| / 127),
// q = nearest integer to x * 127 / max|x| (ties to even, as ggml's AVX quantizer).
void quantize_activation(const float* x, int64_t n, Q8Activation& out);

// Replaces x (n_rows rows of n values) by the values the row dots of `type` multiply with (F16,
// BF16 or Q8_0/Q8_K blocks as ggml rounds them); unchanged for F32 weights.
void round_activation_grid(gguf::TensorType type, float* x, int64_t n, int64_t n_rows);

// Dot product of one stored Q8_0, Q5_0 or Q4_0 row (n values) with a quantized activation.
float dot_q8_activation(gguf::TensorType type, const void* row, const Q8Activation& x, int64_t n);

// y[r] = dot of rows[r] (1 .. kRowStreams rows of one type, anywhere in memory) with x; each y[r]
// equals dot_q8_activation of that row alone.
void dot_q8_activation_rows(gguf::TensorType type, std::span<const void* const> rows,
                            const Q8Activation& x, int64_t n, float* y);

// The same for up to kMaxQ8Batch activations at once: y[t * y_stride] = dot(row, *xs[t]); each
// weight block is loaded and made unsigned once for every token.
inline constexpr int64_t kMaxQ8Batch = 8;
void dot_q8_activation_batch(gguf::TensorType type, const void* row,
                             std::span<const Q8Activation* const> xs, int64_t n, float* y,
                             int64_t y_stride);

}  // namespace moa::kernels
