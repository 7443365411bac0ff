// Naive double-precision references for every kernel in kernels.h: plain loops, no tiling, no
// SIMD, no threads. Tests compare the optimised kernels against these; they are too slow for
// anything else. Quantized weights are expanded with gguf::dequantize_row.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "gguf/types.h"
#include "kernels/kernels.h"

namespace moa::kernels::reference {

// x as the kernels multiply it with weights of `type` (llama.cpp's rules): for Q8_0, Q5_0 and
// Q4_0 weights rounded to Q8_0 blocks by ggml's reference quantizer, for Q6_K, Q5_K and Q4_K
// weights to Q8_K blocks (ggml's quantize_row_q8_K_ref), for F16 weights to F16, for BF16
// weights to BF16 (ggml's GGML_FP32_TO_BF16), for F32 weights unchanged.
std::vector<float> activation_for(gguf::TensorType type, const float* x, int64_t n);
// True for the types activation_for changes (all but F32).
bool activation_is_rounded(gguf::TensorType type);
void matvec(const WeightMatrix& w, const float* x, float* y);
void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y);
void rms_norm(const float* x, const float* weight, int64_t n, int64_t n_tokens, float eps,
              float* y);
void swiglu(const float* gate, const float* up, int64_t n, float* out);
void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions,
          const RopeParams& params);
// True iff key `key` is visible from the query at position `pos` (the BandMask rule).
bool key_visible(const BandMask& mask, int64_t pos, int64_t key);
// Element `index` of Q8_0 K/V rows of head_dim values (decoded straight from the block bytes).
double q8_0_kv_value(const void* base, int64_t index, int64_t head_dim);
// Full masked softmax per query row; rows with no visible key produce zeros.
void attention(const AttentionShape& shape, const float* q, int64_t n_query, int64_t q_pos0,
               const KvView& kv, std::span<const BandMask> masks, float* out);

}  // namespace moa::kernels::reference
