// Inline scalar conversions of 16-bit floats (IEEE half, bfloat16) to F32 for the kernels' inner
// loops, where a call into gguf/quant.cc per block scale would cost more than the block's math.
#pragma once

#include <bit>
#include <cstdint>
#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace moa::kernels {

// Exact IEEE binary16 -> binary32 (normals, subnormals, inf, NaN). With F16C one instruction
// (it is on the hot path: one call per 32-value block of Q8_0/Q4_0 rows); otherwise
// branch-light bit arithmetic: the exponent is rebased by a multiply so subnormals need only
// one alternative path.
inline float half_to_float(uint16_t h) {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  const uint32_t word = static_cast<uint32_t>(h) << 16;
  const uint32_t sign = word & 0x80000000u;
  const uint32_t doubled = word + word;  // drops the sign bit
  const float normal =
      std::bit_cast<float>((doubled >> 4) + (0xE0u << 23)) * std::bit_cast<float>(0x7800000u);
  const float subnormal = std::bit_cast<float>((doubled >> 17) | (126u << 23)) - 0.5f;
  const uint32_t magnitude =
      doubled < (1u << 27) ? std::bit_cast<uint32_t>(subnormal) : std::bit_cast<uint32_t>(normal);
  return std::bit_cast<float>(sign | magnitude);
#endif
}

inline float bf16_to_float(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

}  // namespace moa::kernels
