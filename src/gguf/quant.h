// Number formats of GGUF tensors: block layouts (as in ggml), conversion of rows to F32 and
// from F32 (the writer uses the latter to build test models of every type).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "gguf/types.h"

namespace moa::gguf {

inline constexpr int64_t kQK8_0 = 32;
inline constexpr int64_t kQK4_0 = 32;
inline constexpr int64_t kQK5_0 = 32;
inline constexpr int64_t kQK_K = 256;
inline constexpr int64_t kKScaleBytes = 12;

struct BlockQ8_0 {
  uint16_t d;  // F16 scale
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34);

struct BlockQ4_0 {
  uint16_t d;              // F16 scale
  uint8_t qs[kQK4_0 / 2];  // low nibbles: elements 0..15, high nibbles: 16..31
};
static_assert(sizeof(BlockQ4_0) == 18);

struct BlockQ5_0 {
  uint16_t d;              // F16 scale
  uint8_t qh[4];           // bit j: the fifth bit of element j
  uint8_t qs[kQK5_0 / 2];  // low 4 bits, laid out as in Q4_0
};
static_assert(sizeof(BlockQ5_0) == 22);

struct BlockQ4_K {
  uint16_t d;                    // F16 super-block scale for the quantized scales
  uint16_t dmin;                 // F16 super-block scale for the quantized mins
  uint8_t scales[kKScaleBytes];  // 8 scales + 8 mins, 6 bits each
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

struct BlockQ5_K {
  uint16_t d;                    // as in Q4_K
  uint16_t dmin;                 // as in Q4_K
  uint8_t scales[kKScaleBytes];  // as in Q4_K
  uint8_t qh[kQK_K / 8];         // bit s of byte l: the fifth bit of value 32 s + l
  uint8_t qs[kQK_K / 2];         // low 4 bits, laid out as in Q4_K
};
static_assert(sizeof(BlockQ5_K) == 176);

struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];      // low 4 bits
  uint8_t qh[kQK_K / 4];      // high 2 bits
  int8_t scales[kQK_K / 16];  // 8-bit sub-block scales
  uint16_t d;                 // F16 super-block scale
};
static_assert(sizeof(BlockQ6_K) == 210);

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);  // round to nearest even
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);  // round to nearest even, NaN stays NaN

// True for the types moa reads: F32, F16, BF16, Q8_0, Q5_0, Q4_0, Q6_K, Q5_K, Q4_K.
bool is_supported_type(TensorType type);
// The names of those types, for error messages.
const char* supported_type_names();
// Elements per block (1 for F32/F16/BF16) and bytes per block, for any type ggml defines.
// Both return 0 for unknown codes.
int64_t type_block_elements(TensorType type);
size_t type_block_bytes(TensorType type);
// Bytes of a row of `n` elements; throws moa::Error if n is not a multiple of the block size.
size_t row_bytes(TensorType type, int64_t n);

// Converts `n` elements (a multiple of the block size) stored as `type` to F32.
void dequantize_row(TensorType type, const void* src, float* dst, int64_t n);
// Converts `n` F32 values to `type` (simple reference quantizers; used to build test models).
void quantize_row(TensorType type, const float* src, void* dst, int64_t n);

}  // namespace moa::gguf
