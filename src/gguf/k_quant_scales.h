// The packed 6-bit sub-block scales and mins of Q4_K and Q5_K blocks, for code outside gguf/ that
// unpacks those blocks itself (the int8 prefill GEMM's weight packing).
#pragma once

#include <cstdint>

namespace moa::gguf {

// Sub-block j's (0..7) 6-bit scale and min from the 12 packed scale bytes of a Q4_K or Q5_K block
// (ggml's get_scale_min_k4).
void q4_k_scale_min(const uint8_t* scales, int j, int* scale, int* min);

}  // namespace moa::gguf
