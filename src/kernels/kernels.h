// Compute kernels of the forward pass. They know nothing about models: plain arrays, shapes and
// thread counts in, arrays out. Each has a naive double-precision reference in
// kernels/reference.h, and tests compare the two.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "gguf/types.h"

namespace moa::kernels {

// A weight matrix in its stored format: `rows` rows of `cols` elements each (GGUF ne[1] x ne[0]);
// y = W x maps a `cols` vector to a `rows` vector.
struct WeightMatrix {
  gguf::TensorType type = gguf::TensorType::kF32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

// y[r] = sum_c W[r][c] * x[c], directly on the stored format (SIMD, no full dequantization).
void matvec(const WeightMatrix& w, const float* x, float* y, int n_threads);
// Y[t] = W X[t] for t < n_tokens; x is [n_tokens][cols], y is [n_tokens][rows]. Batches use
// GEMM (OpenBLAS sgemm on row blocks dequantized on the fly; F16/BF16 weights on AVX-512 take
// gemm_f16.cc's packed micro-kernel instead); a single token uses matvec.
void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, int n_threads);
// One of several products with the same input (Q/K/V, or gate/up): y = W x.
struct Projection {
  WeightMatrix w;
  float* y = nullptr;  // [n_tokens][w.rows]
};
// matmul for each projection; for one token the rows of all matrices are split over one thread
// team (one fork/join instead of one per matrix, and no idle tail per matrix).
void matmul_shared_input(std::span<const Projection> projections, const float* x, int64_t n_tokens,
                         int n_threads);
// y[t] += bias for every token (qwen2 QKV biases).
void add_bias(const float* bias, int64_t n, int64_t n_tokens, float* y);

// y = x / sqrt(mean(x^2) + eps) * weight, for n_tokens rows of n.
void rms_norm(const float* x, const float* weight, int64_t n, int64_t n_tokens, float eps,
              float* y);
// out = silu(gate) * up, elementwise over n values.
void swiglu(const float* gate, const float* up, int64_t n, float* out);
// out[i] = e^x[i] for x[i] <= 0 as the attention softmax computes it (kernels/exp_vector.h):
// inputs below -87 count as -87; Highway's Exp without its range checks (error below 1.2e-7).
void exp_nonpositive(const float* x, int64_t n, float* out);
// x += y over n values.
void add_inplace(float* x, const float* y, int64_t n);

// Rotary position embedding applied in place to `n_heads` heads of `head_dim` values for each
// of n_tokens tokens at positions[t]. Only the first n_rot dims rotate.
struct RopeParams {
  bool neox = false;  // false: pairs (2i, 2i+1); true: pairs (i, i + n_rot/2)
  int64_t n_rot = 0;
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;              // linear scaling: theta *= freq_scale (= 1 / factor)
  const float* freq_factors = nullptr;  // llama3: per-pair divisor of the frequency, n_rot/2
};
void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions,
          const RopeParams& params);

// Which keys a KV head may see from query position i: key j (j <= i) is visible iff j < sinks
// or i - j < span. Dense attention is {0, INT64_MAX}. (METHOD.md section 1.)
struct BandMask {
  int64_t sinks = 0;
  int64_t span = INT64_MAX;
};

// How cached keys/values are stored. Q8_0 rows are blocks of an F16 scale followed by int8
// values (ggml's block_q8_0): 34 bytes per 32 values, 0.53x of F16.
enum class KvType { kF32, kF16, kQ8_0 };

// Values per scale block of a Q8_0 row of head_dim values: 32, or the whole row when head_dim is
// shorter (tiny models with head_dim 8 or 16); 1 for F32 and F16.
int64_t kv_block_elements(KvType type, int64_t head_dim);
// Bytes of n stored K/V elements laid out in rows of head_dim (n a multiple of the block; every
// row start is). All cache and kernel address arithmetic goes through it.
size_t kv_bytes(KvType type, int64_t n, int64_t head_dim);
// Fails ("<what>: ...") when rows of head_dim values cannot be stored as `type`: Q8_0 needs
// head_dim a multiple of 32 or a divisor of 32.
void check_kv_head_dim(KvType type, int64_t head_dim, const char* what);
// One K or V row of n = head_dim values to Q8_0 blocks, as ggml's reference quantizer
// (quantize_row_q8_0_ref: d = max|x| / 127 stored as F16, q = round(x / d)), and back.
void quantize_kv_row_q8_0(const float* src, int64_t n, void* dst);
void dequantize_kv_row_q8_0(const void* src, int64_t n, float* dst);

// Keys/values of one layer: for KV head h and key position p the vector starts at
// element h * head_stride + p * head_dim of k (and v).
struct KvView {
  KvType type = KvType::kF32;
  const void* k = nullptr;
  const void* v = nullptr;
  int64_t head_stride = 0;  // elements between consecutive KV heads
  int64_t n_keys = 0;       // keys at positions 0 .. n_keys-1 are valid
};

struct AttentionShape {
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  float scale = 1.0f;  // usually 1/sqrt(head_dim)
  // Decode-shaped tiles over an F16 cache may multiply in BF16 (vdpbf16ps, F32 sums) where the
  // CPU has AVX512-BF16; false keeps F32 products everywhere (the engine's default).
  bool bf16_products = false;
};

// Causal attention, flash style (block-wise online softmax, never an N x N matrix): queries at
// positions q_pos0 .. q_pos0 + n_query - 1, q and out laid out [n_query][n_head][head_dim].
// `masks` holds one BandMask per KV head, or is empty for dense attention; tiles that a mask
// hides entirely are skipped, so cost falls with density.
void attention(const AttentionShape& shape, const float* q, int64_t n_query, int64_t q_pos0,
               const KvView& kv, std::span<const BandMask> masks, float* out, int n_threads);

// Keys of one KV head at consecutive positions key_pos0 .. key_pos0 + n_keys - 1: slot t's
// vector starts at element t * head_dim of k (and v). A head's keys may come as several runs
// (sink slots, the two halves of a ring buffer); runs of one head must not overlap.
struct KeyRun {
  int64_t kv_head = 0;
  const void* k = nullptr;
  const void* v = nullptr;
  int64_t key_pos0 = 0;
  int64_t n_keys = 0;
};

// Online-softmax state of n_query x n_head attention rows (row = query * n_head + head), so
// attention can be accumulated over key runs in several calls and normalised once at the end.
// After attention_finish it still holds each row's max score and denominator, from which a
// caller can recover the normalised weight exp(score - max) / denom of any key (H2O).
struct AttentionState {
  int64_t n_query = 0;
  int64_t n_head = 0;
  int64_t head_dim = 0;
  std::vector<float> max;    // [row] running max of scaled scores (-inf: no key seen)
  std::vector<float> denom;  // [row] sum of exp(score - max)
  std::vector<float> out;    // [row][head_dim] unnormalised weighted value sum

  // Sizes the state and empties every row.
  void reset(int64_t n_query_rows, int64_t n_heads, int64_t dim);
};

// Adds the keys of `runs` (all stored as `type`) to `state`, for queries at positions
// q_pos0 .. q_pos0 + n_query - 1. Masks are per KV head on absolute positions (empty: dense);
// key tiles a mask hides are skipped. The state must have been reset to (n_query, n_head,
// head_dim). Heads of different spans and runs of different lengths share one parallel launch.
void attention_accumulate(const AttentionShape& shape, const float* q, int64_t n_query,
                          int64_t q_pos0, KvType type, std::span<const KeyRun> runs,
                          std::span<const BandMask> masks, AttentionState& state, int n_threads);
// Same, for a KvView segment whose slot t holds the key at position key_pos0 + t.
void attention_accumulate(const AttentionShape& shape, const float* q, int64_t n_query,
                          int64_t q_pos0, const KvView& segment, int64_t key_pos0,
                          std::span<const BandMask> masks, AttentionState& state, int n_threads);
// out[row] = state.out[row] / state.denom[row]; rows that saw no key get zeros.
void attention_finish(const AttentionState& state, float* out);

}  // namespace moa::kernels
