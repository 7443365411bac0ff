// Scalar reference conversions between F32 and the tensor formats moa reads (F16, BF16, Q8_0,
// Q5_0, Q4_0, Q6_K, Q5_K, Q4_K), bit-exact with ggml's dequantize_row_* so that weights mean what
// llama.cpp means. Blocks are read through byte offsets and memcpy, never by casting the (possibly
// unaligned) source to a block struct; the inner loops are plain fixed-length loops over one
// block so the compiler can vectorise them, since prefill dequantizes whole GEMM tiles with them.
// The quantizers build test models: Q8_0/Q5_0/Q4_0 are ggml's reference ones; Q4_K/Q5_K/Q6_K are
// simple nearest-rounding ones (not llama.cpp's searches) whose scales cover each sub-block's
// range. Q5_0 and Q5_K are Q4_0 and Q4_K plus a fifth bit per value, so they share their code.
#include "gguf/quant.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <string>

#include "gguf/k_quant_scales.h"
#include "util/error.h"

namespace moa::gguf {
namespace {

// GGUF is little-endian and blocks are read by memcpy into host integers.
static_assert(std::endian::native == std::endian::little, "moa reads GGUF on little-endian hosts");

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, sizeof v); }

// fp16 -> fp32 without branches so that row loops vectorise: shifting the 15 magnitude bits into
// fp32 position and scaling by 2^(127-15) is exact for normal and subnormal halves (fp32
// subnormals are not flushed: moa is never built with fast-math); only inf/NaN need a select.
inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t shifted = static_cast<uint32_t>(h & 0x7FFFu) << 13;
  const float finite = std::bit_cast<float>(shifted) * 0x1p112f;
  const uint32_t magnitude =
      (h & 0x7C00u) == 0x7C00u ? (shifted | 0x7F800000u) : std::bit_cast<uint32_t>(finite);
  return std::bit_cast<float>(sign | magnitude);
}

// The smallest fp16 value >= v (v >= 0, finite), so that a stored scale still covers v.
uint16_t fp16_at_least(float v) {
  uint16_t h = fp32_to_fp16(v);
  if (half_to_float(h) < v) ++h;
  return h;
}

int nearest_clamped(float v, int lo, int hi) {
  return std::clamp(static_cast<int>(std::nearbyint(v)), lo, hi);
}

// ---- dequantization, one block at a time ----

void dequantize_q8_0(const uint8_t* block, float* y) {
  const float d = half_to_float(load_u16(block + offsetof(BlockQ8_0, d)));
  const auto* qs = reinterpret_cast<const int8_t*>(block + offsetof(BlockQ8_0, qs));
  for (int j = 0; j < kQK8_0; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

// Splits 16 bytes of nibbles into 32 values: low nibbles are elements 0..15, high ones 16..31.
// Eight bytes at a time leaves one 32-wide convert loop per block, as for Q8_0 (a 16-iteration
// byte loop is shorter than the vector width and would stay scalar).
void split_nibbles(const uint8_t* qs, uint8_t* q) {
  constexpr int kHalf = kQK4_0 / 2;
  for (int half = 0; half < 2; ++half) {
    uint64_t packed;
    std::memcpy(&packed, qs + 8 * half, 8);
    const uint64_t low = packed & 0x0F0F0F0F0F0F0F0Full,
                   high = (packed >> 4) & 0x0F0F0F0F0F0F0F0Full;
    std::memcpy(q + 8 * half, &low, 8);
    std::memcpy(q + kHalf + 8 * half, &high, 8);
  }
}

void dequantize_q4_0(const uint8_t* block, float* y) {
  const float d = half_to_float(load_u16(block + offsetof(BlockQ4_0, d)));
  uint8_t q[kQK4_0];
  split_nibbles(block + offsetof(BlockQ4_0, qs), q);
  for (int j = 0; j < kQK4_0; ++j) y[j] = static_cast<float>(q[j] - 8) * d;
}

void dequantize_q5_0(const uint8_t* block, float* y) {
  const float d = half_to_float(load_u16(block + offsetof(BlockQ5_0, d)));
  uint32_t qh;
  std::memcpy(&qh, block + offsetof(BlockQ5_0, qh), sizeof qh);
  uint8_t q[kQK5_0];
  split_nibbles(block + offsetof(BlockQ5_0, qs), q);
  for (int j = 0; j < kQK5_0; ++j) q[j] = static_cast<uint8_t>(q[j] | (((qh >> j) & 1u) << 4));
  for (int j = 0; j < kQK5_0; ++j) y[j] = static_cast<float>(q[j] - 16) * d;
}

// Q4_K and Q5_K: each 32 bytes of qs hold two sub-blocks of 32, low nibbles first, then high
// nibbles; Q5_K's qh[l] bit s adds 16 to value l of sub-block s.
template <class Block, bool kFifthBit>
void dequantize_k_nibbles(const uint8_t* block, float* y) {
  const float d = half_to_float(load_u16(block + offsetof(Block, d)));
  const float dmin = half_to_float(load_u16(block + offsetof(Block, dmin)));
  const uint8_t* scales = block + offsetof(Block, scales);
  const uint8_t* qs = block + offsetof(Block, qs);
  const uint8_t* qh = block + (kFifthBit ? offsetof(BlockQ5_K, qh) : 0);
  for (int pair = 0; pair < 4; ++pair, qs += 32, y += 64) {
    int sc_lo, m_lo, sc_hi, m_hi;
    q4_k_scale_min(scales, 2 * pair, &sc_lo, &m_lo);
    q4_k_scale_min(scales, 2 * pair + 1, &sc_hi, &m_hi);
    const float d_lo = d * static_cast<float>(sc_lo), min_lo = dmin * static_cast<float>(m_lo);
    const float d_hi = d * static_cast<float>(sc_hi), min_hi = dmin * static_cast<float>(m_hi);
    uint8_t lo[32], hi[32];
    for (int l = 0; l < 32; ++l) {
      lo[l] = qs[l] & 0x0F;
      hi[l] = qs[l] >> 4;
      if constexpr (kFifthBit) {
        lo[l] = static_cast<uint8_t>(lo[l] | (((qh[l] >> (2 * pair)) & 1) << 4));
        hi[l] = static_cast<uint8_t>(hi[l] | (((qh[l] >> (2 * pair + 1)) & 1) << 4));
      }
    }
    for (int l = 0; l < 32; ++l) y[l] = d_lo * static_cast<float>(lo[l]) - min_lo;
    for (int l = 0; l < 32; ++l) y[l + 32] = d_hi * static_cast<float>(hi[l]) - min_hi;
  }
}

// Q6_K: each half (128 values) uses 64 bytes of ql and 32 of qh. Value l + 32k (k = 0..3) takes
// its low nibble from ql[l + 32 * (k & 1)] (low nibble for k < 2, high for k >= 2) and its top
// two bits from bits 2k..2k+1 of qh[l]; sub-block (16 values) s has scale scales[s].
void dequantize_q6_k(const uint8_t* block, float* y) {
  const float d = half_to_float(load_u16(block + offsetof(BlockQ6_K, d)));
  const uint8_t* ql = block + offsetof(BlockQ6_K, ql);
  const uint8_t* qh = block + offsetof(BlockQ6_K, qh);
  const auto* sc = reinterpret_cast<const int8_t*>(block + offsetof(BlockQ6_K, scales));
  for (int half = 0; half < 2; ++half, ql += 64, qh += 32, sc += 8, y += 128) {
    // Split at l = 16 so each inner loop has fixed scales (ggml: d * sc[is] * q, in that order).
    for (int is = 0; is < 2; ++is) {
      const float s0 = d * static_cast<float>(sc[is + 0]), s1 = d * static_cast<float>(sc[is + 2]);
      const float s2 = d * static_cast<float>(sc[is + 4]), s3 = d * static_cast<float>(sc[is + 6]);
      for (int l = 16 * is; l < 16 * is + 16; ++l) {
        const int q0 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q1 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = s0 * static_cast<float>(q0);
        y[l + 32] = s1 * static_cast<float>(q1);
        y[l + 64] = s2 * static_cast<float>(q2);
        y[l + 96] = s3 * static_cast<float>(q3);
      }
    }
  }
}

template <void (*DequantizeBlock)(const uint8_t*, float*)>
void dequantize_blocks(const void* src, float* dst, int64_t n, int64_t block_elements,
                       size_t block_bytes) {
  const auto* bytes = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / block_elements; ++b) {
    DequantizeBlock(bytes + b * block_bytes, dst + b * block_elements);
  }
}

// ---- quantization, one block at a time ----

// Q8_0 and Q4_0 follow ggml's reference quantizers (quantize_row_q8_0_ref / q4_0_ref) exactly,
// including the unrounded 1/d, so that models built here match files made by gguf-py / llama.cpp.
void quantize_q8_0(const float* x, uint8_t* block) {
  float amax = 0.0f;
  for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_u16(block + offsetof(BlockQ8_0, d), fp32_to_fp16(d));
  auto* qs = reinterpret_cast<int8_t*>(block + offsetof(BlockQ8_0, qs));
  for (int j = 0; j < kQK8_0; ++j) qs[j] = static_cast<int8_t>(std::round(x[j] * id));
}

// ggml's Q4_0/Q5_0 rule: the first value of largest magnitude maps exactly to -half (-8 or -16),
// so its sign chooses d's sign; x * id + half + 0.5 lies in [0.5, 2 half + 0.5] and truncation
// rounds it to nearest, 2 half is clipped to 2 half - 1. Returns d as stored (F16).
uint16_t quantize_symmetric(const float* x, int half, uint8_t* codes) {
  float extreme = 0.0f;
  for (int j = 0; j < kQK4_0; ++j) {
    if (std::fabs(x[j]) > std::fabs(extreme)) extreme = x[j];
  }
  const float d = extreme / static_cast<float>(-half);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const float offset = static_cast<float>(half) + 0.5f;
  for (int j = 0; j < kQK4_0; ++j)
    codes[j] = static_cast<uint8_t>(std::min(2 * half - 1, static_cast<int>(x[j] * id + offset)));
  return fp32_to_fp16(d);
}

// Inverse of split_nibbles (the low 4 bits of each code).
void pack_nibbles(const uint8_t* codes, uint8_t* qs) {
  constexpr int kHalf = kQK4_0 / 2;
  for (int j = 0; j < kHalf; ++j)
    qs[j] = static_cast<uint8_t>((codes[j] & 0x0F) | ((codes[j + kHalf] & 0x0F) << 4));
}

void quantize_q4_0(const float* x, uint8_t* block) {
  uint8_t codes[kQK4_0];
  store_u16(block + offsetof(BlockQ4_0, d), quantize_symmetric(x, 8, codes));
  pack_nibbles(codes, block + offsetof(BlockQ4_0, qs));
}

void quantize_q5_0(const float* x, uint8_t* block) {
  uint8_t codes[kQK5_0];
  store_u16(block + offsetof(BlockQ5_0, d), quantize_symmetric(x, 16, codes));
  pack_nibbles(codes, block + offsetof(BlockQ5_0, qs));
  uint32_t qh = 0;
  for (int j = 0; j < kQK5_0; ++j) qh |= static_cast<uint32_t>(codes[j] >> 4) << j;
  std::memcpy(block + offsetof(BlockQ5_0, qh), &qh, sizeof qh);
}

// Inverse of q4_k_scale_min for all 8 sub-blocks.
void pack_q4_k_scales(const int* scale, const int* min, uint8_t* packed) {
  for (int j = 0; j < 4; ++j) {
    packed[j] = static_cast<uint8_t>(scale[j] | ((scale[j + 4] >> 4) << 6));
    packed[j + 4] = static_cast<uint8_t>(min[j] | ((min[j + 4] >> 4) << 6));
    packed[j + 8] = static_cast<uint8_t>((scale[j + 4] & 0x0F) | ((min[j + 4] & 0x0F) << 4));
  }
}

// Q4_K's and Q5_K's per-block parameters: value = step[s] * code - min_value[s] for sub-block s,
// where step = d * scale_q and min_value = dmin * min_q, exactly as dequantization computes them.
struct Q4KScales {
  uint16_t d_bits = 0, dmin_bits = 0;
  int scale_q[8] = {}, min_q[8] = {};
  float step[8] = {}, min_value[8] = {};
};

// Per sub-block of 32: the offset covers min(0, min x) and the step covers the rest of the
// range up to code `top` (15 or 31); both 6-bit multipliers are rounded up so every value lies
// inside the grid.
Q4KScales choose_k_scales(const float* x, int top_code) {
  constexpr int kSub = 8, kLen = 32;
  Q4KScales p;
  float offset[kSub], top[kSub], step_wanted[kSub];
  float max_offset = 0.0f, max_step = 0.0f;
  for (int s = 0; s < kSub; ++s) {
    const auto [lo, hi] = std::minmax_element(x + s * kLen, x + (s + 1) * kLen);
    offset[s] = std::max(0.0f, -*lo);
    top[s] = *hi;
    max_offset = std::max(max_offset, offset[s]);
  }
  p.dmin_bits = fp16_at_least(max_offset / 63.0f);
  const float dmin = half_to_float(p.dmin_bits);
  for (int s = 0; s < kSub; ++s) {
    p.min_q[s] = dmin == 0.0f ? 0 : std::min(63, static_cast<int>(std::ceil(offset[s] / dmin)));
    p.min_value[s] = dmin * static_cast<float>(p.min_q[s]);
    step_wanted[s] = std::max(0.0f, (top[s] + p.min_value[s]) / static_cast<float>(top_code));
    max_step = std::max(max_step, step_wanted[s]);
  }
  p.d_bits = fp16_at_least(max_step / 63.0f);
  const float d = half_to_float(p.d_bits);
  for (int s = 0; s < kSub; ++s) {
    p.scale_q[s] = d == 0.0f ? 0 : std::min(63, static_cast<int>(std::ceil(step_wanted[s] / d)));
    p.step[s] = d * static_cast<float>(p.scale_q[s]);
  }
  return p;
}

// Q4_K (top code 15) and Q5_K (31, the fifth bit in qh).
template <class Block, bool kFifthBit>
void quantize_k_nibbles(const float* x, uint8_t* block) {
  constexpr int kTop = kFifthBit ? 31 : 15;
  const Q4KScales p = choose_k_scales(x, kTop);
  store_u16(block + offsetof(Block, d), p.d_bits);
  store_u16(block + offsetof(Block, dmin), p.dmin_bits);
  pack_q4_k_scales(p.scale_q, p.min_q, block + offsetof(Block, scales));
  uint8_t q[kQK_K];
  for (int i = 0; i < kQK_K; ++i) {
    const int s = i / 32;
    const float v = x[i] + p.min_value[s];
    q[i] = static_cast<uint8_t>(p.step[s] == 0.0f ? 0 : nearest_clamped(v / p.step[s], 0, kTop));
  }
  // Each 32 bytes hold two sub-blocks: the first in the low nibbles, the second in the high.
  uint8_t* qs = block + offsetof(Block, qs);
  for (int pair = 0; pair < 4; ++pair) {
    for (int l = 0; l < 32; ++l) {
      qs[pair * 32 + l] =
          static_cast<uint8_t>((q[pair * 64 + l] & 0x0F) | ((q[pair * 64 + 32 + l] & 0x0F) << 4));
    }
  }
  if constexpr (kFifthBit) {
    uint8_t* qh = block + offsetof(BlockQ5_K, qh);
    for (int l = 0; l < 32; ++l) {
      int bits = 0;
      for (int s = 0; s < 8; ++s) bits |= (q[32 * s + l] >> 4) << s;
      qh[l] = static_cast<uint8_t>(bits);
    }
  }
}

// Inverse of dequantize_q6_k's bit layout for 256 unsigned 6-bit values.
void pack_q6_k_values(const uint8_t* q, uint8_t* ql, uint8_t* qh) {
  for (int half = 0; half < 2; ++half, q += 128, ql += 64, qh += 32) {
    for (int l = 0; l < 32; ++l) {
      ql[l] = static_cast<uint8_t>((q[l] & 0x0F) | ((q[l + 64] & 0x0F) << 4));
      ql[l + 32] = static_cast<uint8_t>((q[l + 32] & 0x0F) | ((q[l + 96] & 0x0F) << 4));
      qh[l] = static_cast<uint8_t>((q[l] >> 4) | ((q[l + 32] >> 4) << 2) | ((q[l + 64] >> 4) << 4) |
                                   ((q[l + 96] >> 4) << 6));
    }
  }
}

// Symmetric per sub-block of 16: step = absmax / 31, its 8-bit multiplier rounded up.
void quantize_q6_k(const float* x, uint8_t* block) {
  constexpr int kSub = 16, kLen = 16;
  float step_wanted[kSub];
  float max_step = 0.0f;
  for (int s = 0; s < kSub; ++s) {
    float amax = 0.0f;
    for (int l = 0; l < kLen; ++l) amax = std::max(amax, std::fabs(x[s * kLen + l]));
    step_wanted[s] = amax / 31.0f;
    max_step = std::max(max_step, step_wanted[s]);
  }
  const uint16_t d_bits = fp16_at_least(max_step / 127.0f);
  const float d = half_to_float(d_bits);
  auto* scales = reinterpret_cast<int8_t*>(block + offsetof(BlockQ6_K, scales));
  uint8_t q[kQK_K];
  for (int s = 0; s < kSub; ++s) {
    const int scale =
        d == 0.0f ? 0 : std::min(127, static_cast<int>(std::ceil(step_wanted[s] / d)));
    scales[s] = static_cast<int8_t>(scale);
    const float step = d * static_cast<float>(scale);
    for (int l = 0; l < kLen; ++l) {
      const int v = step == 0.0f ? 0 : nearest_clamped(x[s * kLen + l] / step, -32, 31);
      q[s * kLen + l] = static_cast<uint8_t>(v + 32);
    }
  }
  pack_q6_k_values(q, block + offsetof(BlockQ6_K, ql), block + offsetof(BlockQ6_K, qh));
  store_u16(block + offsetof(BlockQ6_K, d), d_bits);
}

template <void (*QuantizeBlock)(const float*, uint8_t*)>
void quantize_blocks(const float* src, void* dst, int64_t n, int64_t block_elements,
                     size_t block_bytes) {
  auto* bytes = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n / block_elements; ++b) {
    QuantizeBlock(src + b * block_elements, bytes + b * block_bytes);
  }
}

std::string type_label(TensorType type) {
  const auto code = static_cast<uint32_t>(type);
  const char* name = tensor_type_name(code);
  return name ? fmt::format("{} (type {})", name, code) : fmt::format("unknown type {}", code);
}

// Throws unless `type` is supported and n is a whole number of its blocks.
void check_row(const char* what, TensorType type, int64_t n) {
  if (!is_supported_type(type)) fail("{}: tensor type {} is not supported", what, type_label(type));
  const int64_t block = type_block_elements(type);
  if (n < 0 || n % block != 0) {
    fail("{}: row of {} elements is not a multiple of the {}-element block of {}", what, n, block,
         type_label(type));
  }
}

}  // namespace

// Unpacks sub-block j's 6-bit scale and min from Q4_K's 12 bytes (ggml's get_scale_min_k4):
// bytes 0..3 hold scales 0..3, bytes 4..7 mins 0..3 (low 6 bits each); bytes 8..11 hold the low
// nibbles of scales 4..7 and high nibbles of mins 4..7, whose top 2 bits sit in bits 6..7 of
// bytes 0..3 (scales) and 4..7 (mins).
void q4_k_scale_min(const uint8_t* scales, int j, int* scale, int* min) {
  if (j < 4) {
    *scale = scales[j] & 63;
    *min = scales[j + 4] & 63;
  } else {
    *scale = (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4);
    *min = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

float fp16_to_fp32(uint16_t h) { return half_to_float(h); }

uint16_t fp32_to_fp16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  uint32_t a = x & 0x7FFFFFFFu;
  if (a > 0x7F800000u)
    return sign | 0x7E00u | static_cast<uint16_t>((a >> 13) & 0x3FFu);  // quiet NaN
  if (a >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520 rounds to infinity
  if (a < 0x38800000u) {
    // Below 2^-14: adding 0.5 (ulp 2^-24) rounds |f| to the subnormal grid in hardware (RNE).
    const float rounded = std::bit_cast<float>(a) + 0.5f;
    return sign | static_cast<uint16_t>(std::bit_cast<uint32_t>(rounded) - 0x3F000000u);
  }
  a += 0xFFFu + ((a >> 13) & 1u);  // round to nearest even on the 13 dropped bits
  return sign | static_cast<uint16_t>((a - ((127u - 15u) << 23)) >> 13);
}

float bf16_to_fp32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

uint16_t fp32_to_bf16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  return static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

const char* supported_type_names() { return "F32, F16, BF16, Q8_0, Q5_0, Q4_0, Q6_K, Q5_K, Q4_K"; }

bool is_supported_type(TensorType type) {
  switch (type) {
    case TensorType::kF32:
    case TensorType::kF16:
    case TensorType::kBF16:
    case TensorType::kQ8_0:
    case TensorType::kQ5_0:
    case TensorType::kQ4_0:
    case TensorType::kQ6_K:
    case TensorType::kQ5_K:
    case TensorType::kQ4_K:
      return true;
    default:
      return false;
  }
}

size_t row_bytes(TensorType type, int64_t n) {
  const int64_t block = type_block_elements(type);
  if (block == 0) fail("row_bytes: {} has no known block size", type_label(type));
  if (n < 0 || n % block != 0) {
    fail("row_bytes: row of {} elements is not a multiple of the {}-element block of {}", n, block,
         type_label(type));
  }
  return static_cast<size_t>(n / block) * type_block_bytes(type);
}

void dequantize_row(TensorType type, const void* src, float* dst, int64_t n) {
  check_row("dequantize_row", type, n);
  if (n == 0) return;
  const int64_t block = type_block_elements(type);
  const size_t bytes = type_block_bytes(type);
  const auto* in = static_cast<const uint8_t*>(src);
  switch (type) {
    case TensorType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case TensorType::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(load_u16(in + 2 * i));
      return;
    case TensorType::kBF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(load_u16(in + 2 * i));
      return;
    case TensorType::kQ8_0:
      return dequantize_blocks<dequantize_q8_0>(src, dst, n, block, bytes);
    case TensorType::kQ4_0:
      return dequantize_blocks<dequantize_q4_0>(src, dst, n, block, bytes);
    case TensorType::kQ5_0:
      return dequantize_blocks<dequantize_q5_0>(src, dst, n, block, bytes);
    case TensorType::kQ4_K:
      return dequantize_blocks<dequantize_k_nibbles<BlockQ4_K, false>>(src, dst, n, block, bytes);
    case TensorType::kQ5_K:
      return dequantize_blocks<dequantize_k_nibbles<BlockQ5_K, true>>(src, dst, n, block, bytes);
    case TensorType::kQ6_K:
      return dequantize_blocks<dequantize_q6_k>(src, dst, n, block, bytes);
    default:
      fail("dequantize_row: tensor type {} is not supported", type_label(type));
  }
}

void quantize_row(TensorType type, const float* src, void* dst, int64_t n) {
  check_row("quantize_row", type, n);
  if (n == 0) return;
  const int64_t block = type_block_elements(type);
  const size_t bytes = type_block_bytes(type);
  auto* out = static_cast<uint8_t*>(dst);
  switch (type) {
    case TensorType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case TensorType::kF16:
      for (int64_t i = 0; i < n; ++i) store_u16(out + 2 * i, fp32_to_fp16(src[i]));
      return;
    case TensorType::kBF16:
      for (int64_t i = 0; i < n; ++i) store_u16(out + 2 * i, fp32_to_bf16(src[i]));
      return;
    case TensorType::kQ8_0:
      return quantize_blocks<quantize_q8_0>(src, dst, n, block, bytes);
    case TensorType::kQ4_0:
      return quantize_blocks<quantize_q4_0>(src, dst, n, block, bytes);
    case TensorType::kQ5_0:
      return quantize_blocks<quantize_q5_0>(src, dst, n, block, bytes);
    case TensorType::kQ4_K:
      return quantize_blocks<quantize_k_nibbles<BlockQ4_K, false>>(src, dst, n, block, bytes);
    case TensorType::kQ5_K:
      return quantize_blocks<quantize_k_nibbles<BlockQ5_K, true>>(src, dst, n, block, bytes);
    case TensorType::kQ6_K:
      return quantize_blocks<quantize_q6_k>(src, dst, n, block, bytes);
    default:
      fail("quantize_row: tensor type {} is not supported", type_label(type));
  }
}

}  // namespace moa::gguf
