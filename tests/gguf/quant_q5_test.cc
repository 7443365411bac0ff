// Q5_0 and Q5_K: hand-built blocks checked value by value (the fifth bit of each value comes from
// qh), ggml's Q5_0 rounding rule, and quantize->dequantize error bounds (Q4_K's and Q5_K's in one
// test: the same quantizer with 15 or 31 steps).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>
#include <utility>
#include <vector>

#include "gguf/quant.h"
#include "gguf/quant_helpers.h"

namespace moa::gguf {
namespace {

using testing::dequantize;
using testing::quantize;
using testing::random_values;

TEST(DequantizeRow, Q5_0BlockTakesTheFifthBitFromQh) {
  std::vector<uint8_t> block(22);
  block[0] = 0x00, block[1] = 0x38;  // d = 0.5
  const uint32_t qh = 0xF00FA5C3u;
  std::memcpy(block.data() + 2, &qh, 4);
  for (int j = 0; j < 16; ++j) block[6 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = dequantize(TensorType::kQ5_0, block, 32);
  EXPECT_EQ(y[0], 0.0f);    // nibble 0, bit 0 set: (16 - 16) * 0.5
  EXPECT_EQ(y[2], -7.0f);   // nibble 2, bit 2 clear: (2 - 16) * 0.5
  EXPECT_EQ(y[16], 7.5f);   // high nibble of byte 0 = 15, bit 16 set: (31 - 16) * 0.5
  EXPECT_EQ(y[24], -4.5f);  // high nibble of byte 8 = 7, bit 24 clear
  EXPECT_EQ(y[31], 0.0f);   // high nibble of byte 15 = 0, bit 31 set
  const auto fifth = [&](int j) { return static_cast<int>((qh >> j) & 1u) << 4; };
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], static_cast<float>((j | fifth(j)) - 16) * 0.5f) << j;
    EXPECT_EQ(y[j + 16], static_cast<float>(((15 - j) | fifth(j + 16)) - 16) * 0.5f) << j;
  }
}

TEST(DequantizeRow, Q5_KBlockAddsQhBitsToQ4_KNibbles) {
  const int scale[8] = {1, 2, 3, 4, 33, 47, 63, 17};  // Q4_K's packing (see the Q4_K test)
  const int min[8] = {0, 5, 10, 63, 20, 36, 48, 1};
  const uint8_t packed[12] = {0x81, 0x82, 0xC3, 0x44, 0x40, 0x85,
                              0xCA, 0x3F, 0x41, 0x4F, 0x0F, 0x11};
  std::vector<uint8_t> block(176);
  block[0] = 0x00, block[1] = 0x38;  // d = 0.5
  block[2] = 0x00, block[3] = 0x34;  // dmin = 0.25
  std::memcpy(block.data() + 4, packed, 12);
  for (int l = 0; l < 32; ++l) block[16 + l] = static_cast<uint8_t>(l * 29 + 3);  // qh
  for (int i = 0; i < 128; ++i)
    block[48 + i] = static_cast<uint8_t>((i % 16) | (((i * 3) % 16) << 4));
  const std::vector<float> y = dequantize(TensorType::kQ5_K, block, 256);
  EXPECT_EQ(y[33], 1.75f);    // high nibble 3 of byte 1, qh[1] = 32 bit 1 clear: 0.5*2*3 - 0.25*5
  EXPECT_EQ(y[200], 744.0f);  // low nibble 8 of byte 104, qh[8] = 235 bit 6 set: 0.5*63*24 - 12
  EXPECT_EQ(y[255],
            246.25f);  // high nibble 13 of byte 127, qh[31] = 134 bit 7 set: 0.5*17*29 - .25
  for (int e = 0; e < 256; ++e) {
    const int sub = e / 32, l = e % 32;
    const uint8_t byte = block[48 + (e / 64) * 32 + l];
    const int nibble = sub % 2 == 0 ? (byte & 15) : (byte >> 4);
    const int q = nibble | (((block[16 + l] >> sub) & 1) << 4);
    EXPECT_EQ(y[e], 0.5f * scale[sub] * q - 0.25f * min[sub]) << e;
  }
}

// ggml's quantize_row_q5_0_ref: the first value of largest magnitude maps exactly to code 0
// (d = extreme / -16), and the opposite extreme is clipped from code 32 to 31.
TEST(QuantizeRow, Q5_0MapsTheFirstExtremeToCodeZero) {
  std::vector<float> x(32, 0.0f);
  x[5] = -3.0f;
  x[7] = 3.0f;
  x[9] = 0.1875f;  // exactly one step
  const std::vector<uint8_t> bytes = quantize(TensorType::kQ5_0, x);
  EXPECT_EQ(fp16_to_fp32(static_cast<uint16_t>(bytes[0] | (bytes[1] << 8))), 0.1875f);
  const std::vector<float> y = dequantize(TensorType::kQ5_0, bytes, 32);
  EXPECT_EQ(y[5], -3.0f);
  EXPECT_EQ(y[7], 2.8125f);
  EXPECT_EQ(y[9], 0.1875f);
  EXPECT_EQ(y[0], 0.0f);
}

// Q4_0 and Q5_0 (8 and 16 levels a side): the step is amax/levels; only a value of opposite sign
// near amax is clipped (code 2 levels -> 2 levels - 1), so the bound is one step. The RMS error
// bar halves with twice the levels (4-bit: ~1/sqrt(12) step / typical amax).
TEST(QuantizeRow, Q4_0AndQ5_0ErrorIsAtMostOneStep) {
  const std::vector<float> x = random_values(32 * 64, 3);
  for (const auto& [type, levels, rms_bar] :
       {std::tuple{TensorType::kQ4_0, 8.0f, 0.12}, {TensorType::kQ5_0, 16.0f, 0.06}}) {
    const std::vector<float> y = dequantize(type, quantize(type, x), 32 * 64);
    double sum_sq = 0, sum_err_sq = 0;
    for (size_t b = 0; b < x.size() / 32; ++b) {
      float amax = 0;
      for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
      const float bound = amax / levels * (1.0f + levels / 2048.0f);
      for (size_t j = 0; j < 32; ++j) {
        const float err = y[b * 32 + j] - x[b * 32 + j];
        ASSERT_LE(std::fabs(err), bound) << tensor_type_name(static_cast<uint32_t>(type));
        sum_err_sq += err * err, sum_sq += x[b * 32 + j] * x[b * 32 + j];
      }
    }
    EXPECT_LT(std::sqrt(sum_err_sq / sum_sq), rms_bar)
        << tensor_type_name(static_cast<uint32_t>(type));
  }
}

// Per sub-block bound for Q4_K and Q5_K: half a step, where the step is the sub-block's range over
// the top code (15, 31) enlarged by the 6-bit rounding of the min (up to dmin) and of the scale
// (up to d).
TEST(QuantizeRow, Q4_KAndQ5_KErrorIsAtMostHalfAStep) {
  std::vector<float> x = random_values(256 * 8, 4);
  for (int i = 0; i < 256; ++i) x[256 + i] = 2.0f + 0.01f * i;   // all positive: min offset 0
  for (int i = 0; i < 256; ++i) x[512 + i] = -1.0f - 0.02f * i;  // all negative
  for (int i = 0; i < 32; ++i) x[768 + i] = 0.0f;                // an all-zero sub-block
  for (const auto& [type, top] :
       {std::pair{TensorType::kQ4_K, 15.0f}, {TensorType::kQ5_K, 31.0f}}) {
    const std::vector<float> y = dequantize(type, quantize(type, x), 256 * 8);
    for (size_t b = 0; b < x.size() / 256; ++b) {
      float range[8], max_range = 0, max_offset = 0;
      for (int s = 0; s < 8; ++s) {
        const float* v = x.data() + b * 256 + s * 32;
        const float lo = std::min(0.0f, *std::min_element(v, v + 32));
        range[s] = *std::max_element(v, v + 32) - lo;
        max_range = std::max(max_range, range[s]);
        max_offset = std::max(max_offset, -lo);
      }
      const float dmin = max_offset / 63.0f, d = (max_range + dmin) / top / 63.0f;
      for (int s = 0; s < 8; ++s) {
        const float bound = 0.5f * ((range[s] + dmin) / top + d) * 1.002f + 1e-6f;
        for (int l = 0; l < 32; ++l) {
          const size_t i = b * 256 + s * 32 + l;
          ASSERT_LE(std::fabs(y[i] - x[i]), bound) << tensor_type_name(static_cast<uint32_t>(type))
                                                   << " block " << b << " sub-block " << s;
        }
      }
    }
    for (int i = 768; i < 800; ++i) EXPECT_EQ(y[i], 0.0f);
  }
}

TEST(QuantizeRow, Q5AllZeroRowsStayZero) {
  const std::vector<float> zeros(512, 0.0f);
  for (TensorType type : {TensorType::kQ5_0, TensorType::kQ5_K}) {
    EXPECT_EQ(dequantize(type, quantize(type, zeros), 512), zeros)
        << tensor_type_name(static_cast<uint32_t>(type));
  }
}

}  // namespace
}  // namespace moa::gguf
