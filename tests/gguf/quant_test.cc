// Number formats: fp16/bf16 conversions (every half, every rounding midpoint, and, where the
// CPU has F16C, the hardware instructions), hand-built blocks of the quantized types checked
// value by value, quantize->dequantize error bounds and type tables. Q5_0/Q5_K are in
// quant_q5_test.cc, the real files in quant_real_files_test.cc.
#include "gguf/quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gguf/quant_helpers.h"
#include "util/error.h"

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace moa::gguf {
namespace {

using testing::dequantize;
using testing::quantize;
using testing::random_values;

// Value of a half from its fields, in double, written independently of the library.
double half_value(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exponent = (h >> 10) & 0x1F;
  const int mantissa = h & 0x3FF;
  if (exponent == 0) return sign * std::ldexp(mantissa, -24);
  if (exponent == 31) {
    return mantissa ? std::numeric_limits<double>::quiet_NaN()
                    : sign * std::numeric_limits<double>::infinity();
  }
  return sign * std::ldexp(1024 + mantissa, exponent - 25);
}

float from_bits(uint32_t bits) { return std::bit_cast<float>(bits); }

// ---- fp16 / bf16 ----

TEST(Fp16, DecodesKnownValues) {
  EXPECT_EQ(fp16_to_fp32(0x3C00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0xC000), -2.0f);
  EXPECT_EQ(fp16_to_fp32(0x3555), 0.333251953125f);
  EXPECT_EQ(fp16_to_fp32(0x7BFF), 65504.0f);
  EXPECT_EQ(fp16_to_fp32(0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_fp32(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(fp16_to_fp32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(fp16_to_fp32(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7E00)));
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0xFC01)));
  EXPECT_EQ(std::bit_cast<uint32_t>(fp16_to_fp32(0x8000)), 0x80000000u);
}

TEST(Fp16, DecodesEveryHalfExactly) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const double expected = half_value(static_cast<uint16_t>(h));
    const float got = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      ASSERT_EQ(static_cast<double>(got), expected) << "half 0x" << std::hex << h;
      ASSERT_EQ(std::signbit(got), (h & 0x8000) != 0) << h;
    }
  }
}

TEST(Fp16, RoundsTiesToEven) {
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie -> even 0x3C00
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie -> even 0x3C02
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.1f, -11)), 0x3C01);      // above the tie
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65519.996f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);  // tie between 65504 and 65536 -> infinity
  EXPECT_EQ(fp32_to_fp16(-1e9f), 0xFC00);
}

TEST(Fp16, RoundsEveryMidpointBetweenHalvesToEven) {
  // Midpoints between adjacent halves need 12 significant bits: exact in fp32.
  for (uint16_t h = 0; h < 0x7BFF; ++h) {
    const auto mid = static_cast<float>((half_value(h) + half_value(h + 1)) / 2);
    const uint16_t even = (h & 1) ? h + 1 : h;
    ASSERT_EQ(fp32_to_fp16(mid), even) << std::hex << h;
    ASSERT_EQ(fp32_to_fp16(-mid), even | 0x8000) << std::hex << h;
    ASSERT_EQ(fp32_to_fp16(std::nextafter(mid, 0.0f)), h) << std::hex << h;
    ASSERT_EQ(fp32_to_fp16(std::nextafter(mid, 1e9f)), h + 1) << std::hex << h;
  }
}

TEST(Fp16, HandlesSubnormalsZerosInfinitiesAndNan) {
  const float tiny = std::ldexp(1.0f, -24);
  EXPECT_EQ(fp32_to_fp16(tiny), 0x0001);
  EXPECT_EQ(fp32_to_fp16(0.5f * tiny), 0x0000);  // tie -> even 0
  EXPECT_EQ(fp32_to_fp16(0.75f * tiny), 0x0001);
  EXPECT_EQ(fp32_to_fp16(1.5f * tiny), 0x0002);     // tie -> even 2
  EXPECT_EQ(fp32_to_fp16(2.5f * tiny), 0x0002);     // tie -> even 2
  EXPECT_EQ(fp32_to_fp16(1023.5f * tiny), 0x0400);  // tie between largest subnormal and 2^-14
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-std::ldexp(1.0f, -30)), 0x8000);
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(fp32_to_fp16(-std::numeric_limits<float>::infinity()), 0xFC00);
  for (uint32_t nan_bits : {0x7FC00000u, 0x7F800001u, 0xFFFFFFFFu, 0x7FA00000u}) {
    const uint16_t h = fp32_to_fp16(from_bits(nan_bits));
    EXPECT_EQ(h & 0x7C00, 0x7C00) << std::hex << nan_bits;
    EXPECT_NE(h & 0x03FF, 0) << std::hex << nan_bits;
  }
}

TEST(Fp16, EveryHalfSurvivesARoundTrip) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const auto half = static_cast<uint16_t>(h);
    if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0) continue;  // NaN payloads checked above
    ASSERT_EQ(fp32_to_fp16(fp16_to_fp32(half)), half) << std::hex << h;
  }
}

#if defined(__F16C__)
TEST(Fp16, MatchesTheF16cInstructions) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float hw = _cvtsh_ss(static_cast<uint16_t>(h));
    if (std::isnan(hw)) {  // the hardware quiets signalling NaNs; we keep the payload as is
      ASSERT_TRUE(std::isnan(fp16_to_fp32(static_cast<uint16_t>(h)))) << std::hex << h;
      continue;
    }
    ASSERT_EQ(std::bit_cast<uint32_t>(fp16_to_fp32(static_cast<uint16_t>(h))),
              std::bit_cast<uint32_t>(hw))
        << std::hex << h;
  }
  for (uint16_t h = 0; h < 0x7BFF; ++h) {  // ties, where a wrong rounding rule shows
    const auto mid = static_cast<float>((half_value(h) + half_value(h + 1)) / 2);
    ASSERT_EQ(fp32_to_fp16(mid), _cvtss_sh(mid, _MM_FROUND_TO_NEAREST_INT)) << std::hex << h;
  }
  for (uint64_t bits = 0; bits <= 0xFFFFFFFFu; bits += 65521) {
    const float f = from_bits(static_cast<uint32_t>(bits));
    ASSERT_EQ(fp32_to_fp16(f), _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT)) << std::hex << bits;
  }
}
#endif

TEST(Bf16, ConvertsWithRoundToNearestEven) {
  EXPECT_EQ(bf16_to_fp32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_fp32(0x4049), 3.140625f);
  EXPECT_EQ(bf16_to_fp32(0xC000), -2.0f);
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3F808000)), 0x3F80);  // tie -> even
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3F818000)), 0x3F82);  // tie -> even
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3F808001)), 0x3F81);
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3F807FFF)), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(from_bits(0x7F7FFFFF)), 0x7F80);  // largest float rounds to infinity
  EXPECT_EQ(fp32_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(fp32_to_bf16(from_bits(0x00010000)), 0x0001);  // subnormals keep their top bits
  EXPECT_EQ(fp32_to_bf16(-0.0f), 0x8000);
}

TEST(Bf16, KeepsNanANan) {
  // Rounding 0x7F80FFFF naively would carry into 0x7F81 (still NaN) but 0x7FFFFFFF would wrap
  // to 0x8000 (-0); a signalling NaN with only low bits set would become infinity.
  for (uint32_t nan_bits : {0x7F800001u, 0x7FFFFFFFu, 0xFF800001u, 0x7FC00000u}) {
    EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(from_bits(nan_bits)))))
        << std::hex << nan_bits;
  }
}

// ---- hand-built blocks ----

TEST(DequantizeRow, Q8_0BlockIsScaleTimesCodes) {
  std::vector<uint8_t> block(34);
  block[0] = 0x00, block[1] = 0x38;  // d = 0.5 (fp16 0x3800, little-endian)
  std::array<int8_t, 32> q{};
  for (int j = 0; j < 32; ++j) q[j] = static_cast<int8_t>(j * 9 - 128);  // -128 .. 151 wraps
  q[31] = 127;
  std::memcpy(block.data() + 2, q.data(), 32);
  const std::vector<float> y = dequantize(TensorType::kQ8_0, block, 32);
  EXPECT_EQ(y[0], -64.0f);
  EXPECT_EQ(y[1], -59.5f);
  EXPECT_EQ(y[31], 63.5f);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.5f * q[j]) << j;
}

TEST(DequantizeRow, Q4_0BlockPutsLowNibblesFirst) {
  std::vector<uint8_t> block(18);
  block[0] = 0x00, block[1] = 0x40;  // d = 2.0
  for (int j = 0; j < 16; ++j) block[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = dequantize(TensorType::kQ4_0, block, 32);
  EXPECT_EQ(y[0], -16.0f);   // (0 - 8) * 2
  EXPECT_EQ(y[15], 14.0f);   // (15 - 8) * 2
  EXPECT_EQ(y[16], 14.0f);   // high nibble of byte 0 = 15
  EXPECT_EQ(y[31], -16.0f);  // high nibble of byte 15 = 0
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 2.0f) << j;
    EXPECT_EQ(y[j + 16], (7 - j) * 2.0f) << j;
  }
}

TEST(DequantizeRow, Q4_KBlockUnpacksSixBitScalesAndMins) {
  // 6-bit scales and mins chosen so that sub-blocks 4..7 use their top two bits.
  const int scale[8] = {1, 2, 3, 4, 33, 47, 63, 17};
  const int min[8] = {0, 5, 10, 63, 20, 36, 48, 1};
  std::vector<uint8_t> block(144);
  block[0] = 0x00, block[1] = 0x38;  // d = 0.5
  block[2] = 0x00, block[3] = 0x34;  // dmin = 0.25
  // Packed by hand: bytes 0-3 scale[j] | scale[j+4]>>4 << 6, bytes 4-7 the same for mins,
  // bytes 8-11 scale[j+4] & 15 | (min[j+4] & 15) << 4.
  const uint8_t packed[12] = {0x81, 0x82, 0xC3, 0x44, 0x40, 0x85,
                              0xCA, 0x3F, 0x41, 0x4F, 0x0F, 0x11};
  std::memcpy(block.data() + 4, packed, 12);
  for (int i = 0; i < 128; ++i)
    block[16 + i] = static_cast<uint8_t>((i % 16) | (((i * 3) % 16) << 4));
  const std::vector<float> y = dequantize(TensorType::kQ4_K, block, 256);
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[33], 1.75f);     // byte 1 high nibble 3, sub-block 1: 0.5*2*3 - 0.25*5
  EXPECT_EQ(y[200], 240.0f);   // byte 104 low nibble 8, sub-block 6: 0.5*63*8 - 0.25*48
  EXPECT_EQ(y[255], 110.25f);  // byte 127 high nibble 13, sub-block 7: 0.5*17*13 - 0.25*1
  for (int e = 0; e < 256; ++e) {
    const int within = e % 64;  // 64 values share 32 bytes: low nibbles, then high nibbles
    const uint8_t byte = block[16 + (e / 64) * 32 + within % 32];
    const int q = within < 32 ? (byte & 15) : (byte >> 4);
    const int sub = e / 32;
    EXPECT_EQ(y[e], 0.5f * scale[sub] * q - 0.25f * min[sub]) << e;
  }
}

TEST(DequantizeRow, Q6_KBlockCombinesLowAndHighBits) {
  const int8_t scale[16] = {1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12, 13, 127, -128, 16};
  std::vector<uint8_t> block(210);
  for (int i = 0; i < 128; ++i) block[i] = static_cast<uint8_t>(i * 37 + 11);       // ql
  for (int i = 0; i < 64; ++i) block[128 + i] = static_cast<uint8_t>(i * 101 + 7);  // qh
  std::memcpy(block.data() + 192, scale, 16);
  block[208] = 0x00, block[209] = 0x38;  // d = 0.5
  const std::vector<float> y = dequantize(TensorType::kQ6_K, block, 256);
  // Value 0: ql[0] = 11 -> low 11; qh[0] = 7 -> bits 0-1 = 3; q = 11 + 48 - 32 = 27, scale 1.
  EXPECT_EQ(y[0], 13.5f);
  // Value 100 = 96 + 4 (k = 3): ql[36] = 1343 & 255 = 63 -> high nibble 3; qh[4] = 411 & 255 =
  // 155 -> bits 6-7 = 2; q = 3 + 32 - 32 = 3; sub-block 6, scale 7 -> 0.5 * 7 * 3.
  EXPECT_EQ(y[100], 10.5f);
  for (int e = 0; e < 256; ++e) {
    const int half = e / 128, k = (e % 128) / 32, l = e % 32;
    const uint8_t low_byte = block[half * 64 + l + 32 * (k % 2)];
    const int low = (k < 2 ? low_byte : low_byte >> 4) & 15;
    const int high = (block[128 + half * 32 + l] >> (2 * k)) & 3;
    EXPECT_EQ(y[e], 0.5f * scale[e / 16] * ((low | (high << 4)) - 32)) << e;
  }
}

TEST(DequantizeRow, F16AndBf16RowsConvertEachElement) {
  const std::vector<uint8_t> f16 = {0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00, 0x00, 0x7C};
  EXPECT_EQ(dequantize(TensorType::kF16, f16, 4),
            (std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24),
                                std::numeric_limits<float>::infinity()}));
  const std::vector<uint8_t> bf16 = {0x80, 0x3F, 0x49, 0x40};
  EXPECT_EQ(dequantize(TensorType::kBF16, bf16, 2), (std::vector<float>{1.0f, 3.140625f}));
}

TEST(DequantizeRow, ReadsUnalignedSources) {
  const std::vector<float> x = random_values(64, 5);
  for (TensorType type :
       {TensorType::kF32, TensorType::kF16, TensorType::kQ8_0, TensorType::kQ4_0}) {
    const std::vector<uint8_t> bytes = quantize(type, x);
    std::vector<uint8_t> shifted(bytes.size() + 1);
    std::memcpy(shifted.data() + 1, bytes.data(), bytes.size());
    std::vector<float> y(64);
    dequantize_row(type, shifted.data() + 1, y.data(), 64);
    EXPECT_EQ(y, dequantize(type, bytes, 64)) << tensor_type_name(static_cast<uint32_t>(type));
  }
}

// ---- quantize -> dequantize ----

TEST(QuantizeRow, FloatFormatsRoundTripWithinHalfAnUlp) {
  const std::vector<float> x = random_values(1000, 1, 3.0f);
  EXPECT_EQ(dequantize(TensorType::kF32, quantize(TensorType::kF32, x), 1000), x);
  const std::vector<float> f16 = dequantize(TensorType::kF16, quantize(TensorType::kF16, x), 1000);
  const std::vector<float> bf16 =
      dequantize(TensorType::kBF16, quantize(TensorType::kBF16, x), 1000);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_LE(std::fabs(f16[i] - x[i]), std::ldexp(std::fabs(x[i]), -11) + 0x1p-25f) << i;
    EXPECT_LE(std::fabs(bf16[i] - x[i]), std::ldexp(std::fabs(x[i]), -8)) << i;
  }
}

TEST(QuantizeRow, Q8_0ErrorIsAtMostHalfAStep) {
  const std::vector<float> x = random_values(32 * 64, 2);
  const std::vector<float> y =
      dequantize(TensorType::kQ8_0, quantize(TensorType::kQ8_0, x), 32 * 64);
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    // Half a step of amax/127, plus the fp16 rounding of the step times up to 127 codes.
    const float bound = amax / 127.0f * (0.5f + 127.0f / 2048.0f);
    for (size_t j = 0; j < 32; ++j) ASSERT_LE(std::fabs(y[b * 32 + j] - x[b * 32 + j]), bound);
  }
}

TEST(QuantizeRow, Q6_KErrorIsAtMostHalfAStep) {
  std::vector<float> x = random_values(256 * 8, 6);
  for (int i = 0; i < 16; ++i) x[256 + i] = 0.0f;
  for (int i = 0; i < 256; ++i) x[512 + i] *= (i < 128 ? 100.0f : 0.01f);  // wide scale spread
  const std::vector<float> y =
      dequantize(TensorType::kQ6_K, quantize(TensorType::kQ6_K, x), 256 * 8);
  for (size_t b = 0; b < x.size() / 256; ++b) {
    float amax[16], max_amax = 0;
    for (int s = 0; s < 16; ++s) {
      amax[s] = 0;
      for (int l = 0; l < 16; ++l) amax[s] = std::max(amax[s], std::fabs(x[b * 256 + s * 16 + l]));
      max_amax = std::max(max_amax, amax[s]);
    }
    for (int s = 0; s < 16; ++s) {
      // Step amax/31 (codes -31..31), enlarged by the 8-bit rounding of the scale (max/31/127).
      const float bound = 0.5f * (amax[s] / 31.0f + max_amax / 31.0f / 127.0f) * 1.002f;
      for (int l = 0; l < 16; ++l) {
        const size_t i = b * 256 + s * 16 + l;
        ASSERT_LE(std::fabs(y[i] - x[i]), bound) << "block " << b << " sub-block " << s;
      }
    }
  }
  for (int i = 256; i < 272; ++i) EXPECT_EQ(y[i], 0.0f);
}

TEST(QuantizeRow, AllZeroRowsStayZero) {
  const std::vector<float> zeros(512, 0.0f);
  for (TensorType type :
       {TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_K, TensorType::kQ6_K}) {
    EXPECT_EQ(dequantize(type, quantize(type, zeros), 512), zeros)
        << tensor_type_name(static_cast<uint32_t>(type));
  }
}

// ---- type tables and errors ----

TEST(TensorTypes, NamesEveryGgmlType) {
  EXPECT_STREQ(tensor_type_name(0), "F32");
  EXPECT_STREQ(tensor_type_name(1), "F16");
  EXPECT_STREQ(tensor_type_name(3), "Q4_1");
  EXPECT_STREQ(tensor_type_name(9), "Q8_1");
  EXPECT_STREQ(tensor_type_name(12), "Q4_K");
  EXPECT_STREQ(tensor_type_name(16), "IQ2_XXS");
  EXPECT_STREQ(tensor_type_name(23), "IQ4_XS");
  EXPECT_STREQ(tensor_type_name(29), "IQ1_M");
  EXPECT_STREQ(tensor_type_name(30), "BF16");
  EXPECT_STREQ(tensor_type_name(35), "TQ2_0");
  EXPECT_STREQ(tensor_type_name(39), "MXFP4");
  EXPECT_EQ(tensor_type_name(4), nullptr);  // Q4_2, removed before GGUF existed
  EXPECT_EQ(tensor_type_name(5), nullptr);
  EXPECT_EQ(tensor_type_name(1000), nullptr);
  EXPECT_STREQ(value_type_name(0), "uint8");
  EXPECT_STREQ(value_type_name(8), "string");
  EXPECT_STREQ(value_type_name(12), "float64");
  EXPECT_EQ(value_type_name(13), nullptr);
}

TEST(TensorTypes, BlockSizesMatchGgml) {
  struct Expected {
    uint32_t code;
    int64_t elements;
    size_t bytes;
  };
  const Expected table[] = {
      {0, 1, 4},      {1, 1, 2},      {2, 32, 18},   {3, 32, 20},    {6, 32, 22},    {7, 32, 24},
      {8, 32, 34},    {9, 32, 36},    {10, 256, 84}, {11, 256, 110}, {12, 256, 144}, {13, 256, 176},
      {14, 256, 210}, {15, 256, 292}, {16, 256, 66}, {17, 256, 74},  {18, 256, 98},  {19, 256, 50},
      {20, 32, 18},   {21, 256, 110}, {22, 256, 82}, {23, 256, 136}, {24, 1, 1},     {25, 1, 2},
      {26, 1, 4},     {27, 1, 8},     {28, 1, 8},    {29, 256, 56},  {30, 1, 2},     {34, 256, 54},
      {35, 256, 66},  {39, 32, 17},
  };
  for (const Expected& e : table) {
    const auto type = static_cast<TensorType>(e.code);
    EXPECT_EQ(type_block_elements(type), e.elements) << tensor_type_name(e.code);
    EXPECT_EQ(type_block_bytes(type), e.bytes) << tensor_type_name(e.code);
  }
  EXPECT_EQ(type_block_bytes(TensorType::kQ8_0), sizeof(BlockQ8_0));
  EXPECT_EQ(type_block_bytes(TensorType::kQ4_0), sizeof(BlockQ4_0));
  EXPECT_EQ(type_block_bytes(TensorType::kQ5_0), sizeof(BlockQ5_0));
  EXPECT_EQ(type_block_bytes(TensorType::kQ4_K), sizeof(BlockQ4_K));
  EXPECT_EQ(type_block_bytes(TensorType::kQ5_K), sizeof(BlockQ5_K));
  EXPECT_EQ(type_block_bytes(TensorType::kQ6_K), sizeof(BlockQ6_K));
  EXPECT_EQ(type_block_elements(static_cast<TensorType>(4)), 0);
  EXPECT_EQ(type_block_bytes(static_cast<TensorType>(77)), 0u);
}

TEST(TensorTypes, SupportsExactlyTheTypesMoaReads) {
  for (uint32_t code = 0; code < 64; ++code) {
    const auto type = static_cast<TensorType>(code);
    const bool expected = code == 0 || code == 1 || code == 2 || code == 6 || code == 8 ||
                          code == 12 || code == 13 || code == 14 || code == 30;
    EXPECT_EQ(is_supported_type(type), expected) << code;
  }
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(RowBytes, CountsWholeBlocks) {
  EXPECT_EQ(row_bytes(TensorType::kF32, 3), 12u);
  EXPECT_EQ(row_bytes(TensorType::kBF16, 5), 10u);
  EXPECT_EQ(row_bytes(TensorType::kQ8_0, 64), 68u);
  EXPECT_EQ(row_bytes(TensorType::kQ4_K, 512), 288u);
  EXPECT_EQ(row_bytes(TensorType::kQ6_K, 0), 0u);
  EXPECT_EQ(row_bytes(static_cast<TensorType>(16), 256), 66u);  // IQ2_XXS: sized, not readable
}

TEST(RowBytes, RejectsPartialBlocksAndUnknownTypes) {
  const std::string partial = error_of([] { row_bytes(TensorType::kQ4_0, 33); });
  EXPECT_NE(partial.find("33"), std::string::npos) << partial;
  EXPECT_NE(partial.find("Q4_0"), std::string::npos) << partial;
  EXPECT_NE(error_of([] { row_bytes(TensorType::kQ6_K, 128); }), "no error");
  EXPECT_NE(error_of([] { row_bytes(TensorType::kQ8_0, -32); }), "no error");
  const std::string unknown = error_of([] { row_bytes(static_cast<TensorType>(4), 32); });
  EXPECT_NE(unknown.find("4"), std::string::npos) << unknown;
}

TEST(DequantizeRow, RejectsUnsupportedTypesByName) {
  std::vector<uint8_t> bytes(176);
  std::vector<float> out(256);
  const std::string message =
      error_of([&] { dequantize_row(TensorType::kQ3_K, bytes.data(), out.data(), 256); });
  EXPECT_NE(message.find("Q3_K"), std::string::npos) << message;
  EXPECT_NE(error_of([&] { quantize_row(TensorType::kQ4_1, out.data(), bytes.data(), 32); }),
            "no error");
  EXPECT_NE(error_of([&] { dequantize_row(TensorType::kQ8_0, bytes.data(), out.data(), 40); }),
            "no error");
}

}  // namespace
}  // namespace moa::gguf
