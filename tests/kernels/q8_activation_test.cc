// Activation rounding (llama.cpp's rules: F16, BF16, Q8_0 and Q8_K blocks) and the int8 row dots
// built on it (Q8_0, Q5_0, Q4_0; Q6_K, Q5_K, Q4_K).
#include "kernels/q8_activation.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gguf/quant.h"
#include "kernels/random_data.h"
#include "kernels/reference.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

using gguf::TensorType;
using testing::random_floats;

TEST(Q8Activation, RoundsLikeGgmlsQ8_0Quantizer) {
  std::vector<float> x = random_floats(256, 3);
  for (int i = 32; i < 64; ++i) x[i] = 0.0f;  // an all-zero block: scale 0, every q 0
  x[70] = 1000.0f;                            // one block dominated by a single value
  Q8Activation got;
  quantize_activation(x.data(), static_cast<int64_t>(x.size()), got);
  std::vector<gguf::BlockQ8_0> want(x.size() / 32);
  gguf::quantize_row(TensorType::kQ8_0, x.data(), want.data(), static_cast<int64_t>(x.size()));
  for (size_t b = 0; b < want.size(); ++b) {
    EXPECT_EQ(got.scales[b], gguf::fp16_to_fp32(want[b].d)) << "block " << b;
    for (size_t i = 0; i < 32; ++i) ASSERT_EQ(got.qs[32 * b + i], want[b].qs[i]) << "block " << b;
  }
  EXPECT_EQ(got.scales[1], 0.0f);
  EXPECT_EQ(got.qs[70], 127);
}

float from_bits(uint32_t bits) { return std::bit_cast<float>(bits); }

// Rows of n values rounded by round_activation_grid equal the reference rule bit for bit (NaNs
// compared by their bits too).
void expect_grid_equals_reference(TensorType type, const std::vector<float>& x, int64_t n) {
  const auto n_rows = static_cast<int64_t>(x.size()) / n;
  std::vector<float> rounded = x;
  round_activation_grid(type, rounded.data(), n, n_rows);
  for (int64_t r = 0; r < n_rows; ++r) {
    const std::vector<float> want = reference::activation_for(type, x.data() + r * n, n);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(std::bit_cast<uint32_t>(rounded[r * n + i]), std::bit_cast<uint32_t>(want[i]))
          << gguf::tensor_type_name(static_cast<uint32_t>(type)) << " " << r << " " << i;
    }
  }
}

// The GEMM path's rounding equals the reference rule bit for bit for every rounded type (F16
// values include ones beyond F16's subnormal and normal ranges), and leaves F32 alone.
TEST(Q8Activation, GridRoundingEqualsTheReferenceActivation) {
  std::vector<float> x = random_floats(3 * 128, 8);
  x[5] = 1e-6f;    // an F16 subnormal
  x[6] = 1e-9f;    // below F16's range: rounds to zero
  x[7] = 70000.f;  // above F16's range: rounds to infinity
  for (TensorType type : {TensorType::kF16, TensorType::kBF16, TensorType::kQ8_0, TensorType::kQ5_0,
                          TensorType::kQ4_0}) {
    expect_grid_equals_reference(type, x, 128);
  }
  std::vector<float> unchanged = x;
  round_activation_grid(TensorType::kF32, unchanged.data(), 128, 3);
  EXPECT_EQ(unchanged, x);
  std::vector<float> wide = random_floats(2 * 512, 9);  // Q8_K blocks are 256 values
  for (TensorType type : {TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K}) {
    std::vector<float> rounded = wide;
    round_activation_grid(type, rounded.data(), 512, 2);
    for (int64_t r = 0; r < 2; ++r) {
      const std::vector<float> want = reference::activation_for(type, wide.data() + r * 512, 512);
      for (int64_t i = 0; i < 512; ++i) ASSERT_EQ(rounded[r * 512 + i], want[i]) << r << " " << i;
    }
  }
}

// BF16 weights take the activation rounded to BF16 as ggml's GGML_FP32_TO_BF16 does: nearest
// even on the 16 dropped bits, subnormals kept (not flushed), NaN kept with its quiet bit set;
// the same in SIMD lanes and in the scalar tail (37 values per row).
TEST(Q8Activation, RoundsToBf16LikeGgml) {
  std::vector<float> x = random_floats(2 * 37, 10);
  const uint32_t special[] = {0x3F808000u, 0x3F818000u, 0x3F808001u, 0x00018000u,
                              0x80008000u, 0x7F7FFFFFu, 0x7F800001u, 0xFFA00000u};
  for (size_t i = 0; i < std::size(special); ++i) {
    x[i] = from_bits(special[i]);       // in the vector lanes
    x[36 + i] = from_bits(special[i]);  // row 0's tail and row 1's lanes
    x[73 - i] = from_bits(special[i]);  // row 1's tail
  }
  for (int64_t n : {37, 74}) expect_grid_equals_reference(TensorType::kBF16, x, n);
  std::vector<float> rounded(x.begin(), x.begin() + 16);
  round_activation_grid(TensorType::kBF16, rounded.data(), 16, 1);
  EXPECT_EQ(std::bit_cast<uint32_t>(rounded[0]), 0x3F800000u);  // tie -> even (down)
  EXPECT_EQ(std::bit_cast<uint32_t>(rounded[1]), 0x3F820000u);  // tie -> even (up)
  EXPECT_EQ(std::bit_cast<uint32_t>(rounded[2]), 0x3F810000u);  // above the tie
  EXPECT_EQ(std::bit_cast<uint32_t>(rounded[3]), 0x00020000u);  // subnormal tie -> even
  EXPECT_EQ(std::bit_cast<uint32_t>(rounded[4]), 0x80000000u);  // -subnormal tie -> -0
  EXPECT_EQ(rounded[5], std::numeric_limits<float>::infinity());
  EXPECT_EQ(std::bit_cast<uint32_t>(rounded[6]), 0x7FC00000u);  // quiet NaN
  EXPECT_EQ(std::bit_cast<uint32_t>(rounded[7]), 0xFFE00000u);
}

// ggml's Q8_K rule: the first value of largest magnitude maps to -127 whatever its sign, its
// negation to +127; the scale is F32 (not F16-rounded); sums16 are the sums of 16 values.
TEST(Q8KActivation, RoundsLikeGgmlsQ8_KQuantizer) {
  std::vector<float> x = random_floats(3 * 256, 4);
  x[10] = 5.0f;  // block 0: the first of two equal magnitudes wins
  x[20] = -5.0f;
  x[300] = -7.5f;                               // block 1: a negative maximum
  for (int i = 512; i < 768; ++i) x[i] = 0.0f;  // block 2: all zero
  Q8KActivation got;
  quantize_activation_q8_k(x.data(), static_cast<int64_t>(x.size()), got);
  EXPECT_EQ(got.qs[10], -127);
  EXPECT_EQ(got.qs[20], 127);
  EXPECT_EQ(got.scales[0], 1.0f / (-127.0f / 5.0f));
  EXPECT_EQ(got.qs[300], -127);
  EXPECT_GT(got.scales[1], 0.0f);
  EXPECT_EQ(got.scales[2], 0.0f);
  const std::vector<float> want = reference::activation_for(TensorType::kQ4_K, x.data(), 768);
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(got.scales[i / 256] * got.qs[i], want[i]) << i;
    if (i >= 512) {
      ASSERT_EQ(got.qs[i], 0) << i;
    }
  }
  for (size_t g = 0; g < got.sums16.size(); ++g) {
    int sum = 0;
    for (size_t i = 0; i < 16; ++i) sum += got.qs[16 * g + i];
    ASSERT_EQ(got.sums16[g], sum) << "group " << g;
  }
  EXPECT_THROW(quantize_activation_q8_k(x.data(), 100, got), Error);
}

// Q4_K and Q6_K rows whose dequantized weights and Q8_K activation are known exactly: the row
// dot must equal the exact product (integer sums, one scale per block).
TEST(Q8KActivation, KQuantDotsEqualTheDequantizedProduct) {
  for (TensorType type : {TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K}) {
    const std::vector<float> w_values = random_floats(512, 11);
    std::vector<uint8_t> row(gguf::row_bytes(type, 512));
    gguf::quantize_row(type, w_values.data(), row.data(), 512);
    std::vector<float> w(512);
    gguf::dequantize_row(type, row.data(), w.data(), 512);
    const std::vector<float> x = random_floats(512, 12);
    Q8KActivation q;
    quantize_activation_q8_k(x.data(), 512, q);
    double want = 0.0;
    for (size_t i = 0; i < 512; ++i)
      want += static_cast<double>(w[i]) * q.scales[i / 256] * q.qs[i];
    if (type != TensorType::kQ6_K) {
      EXPECT_THROW(dot_q8_k_activation(type, row.data(), q, 512), Error);  // wrong order
      const std::vector<int8_t> natural = q.qs;
      order_for_q4_k(q);
      EXPECT_EQ(q.qs[32], natural[64]);  // per 128 values: 0-31, 64-95, 32-63, 96-127
      EXPECT_EQ(q.qs[64], natural[32]);
      EXPECT_EQ(q.qs[128 + 100], natural[128 + 100]);
    }
    const float got = dot_q8_k_activation(type, row.data(), q, 512);
    EXPECT_NEAR(got, want, 1e-5 * (1.0 + std::fabs(want)))
        << gguf::tensor_type_name(static_cast<uint32_t>(type));
  }
}

TEST(Q8Activation, RejectsLengthsThatAreNotABlockMultiple) {
  Q8Activation q;
  const std::vector<float> x(40);
  EXPECT_THROW(quantize_activation(x.data(), 40, q), Error);
}

// A hand-computable product: weights q = i - 16 with scale 0.5, x = 1 everywhere.
TEST(Q8Activation, DotOfAKnownBlockIsExact) {
  gguf::BlockQ8_0 w;
  w.d = gguf::fp32_to_fp16(0.5f);
  for (int i = 0; i < 32; ++i) w.qs[i] = static_cast<int8_t>(i - 16);
  Q8Activation x;
  const std::vector<float> ones(32, 1.0f);
  quantize_activation(ones.data(), 32, x);
  // sum(i - 16) over 0..31 = -16; x rounds to 127 * (1/127) -> scale F16(1/127), q 127
  const double want = 0.5 * -16.0 * 127.0 * static_cast<double>(x.scales[0]);
  EXPECT_NEAR(dot_q8_activation(TensorType::kQ8_0, &w, x, 32), want, 1e-6);
  // The same weights as Q5_0: nibble i & 15, fifth bit i >> 4, offset 16.
  gguf::BlockQ5_0 w5;
  w5.d = w.d;
  for (int j = 0; j < 16; ++j) w5.qs[j] = static_cast<uint8_t>(j | (j << 4));
  const uint32_t qh = 0xFFFF0000u;
  std::memcpy(w5.qh, &qh, sizeof qh);
  EXPECT_NEAR(dot_q8_activation(TensorType::kQ5_0, &w5, x, 32), want, 1e-6);
}

// Batch dots (1..8 tokens) equal one dot per token, for every weight type that has them.
TEST(Q8Activation, BatchDotEqualsOneDotPerToken) {
  constexpr int64_t kCols = 512;
  const std::vector<float> w_values = random_floats(kCols, 4);
  for (TensorType type : {TensorType::kQ8_0, TensorType::kQ5_0, TensorType::kQ4_0}) {
    std::vector<uint8_t> row(gguf::row_bytes(type, kCols));
    gguf::quantize_row(type, w_values.data(), row.data(), kCols);
    std::vector<Q8Activation> xs(kMaxQ8Batch);
    std::vector<const Q8Activation*> pointers;
    for (size_t t = 0; t < xs.size(); ++t) {
      quantize_activation(random_floats(kCols, 20 + static_cast<uint32_t>(t)).data(), kCols, xs[t]);
      pointers.push_back(&xs[t]);
    }
    for (int64_t n = 1; n <= kMaxQ8Batch; ++n) {
      std::vector<float> got(static_cast<size_t>(2 * n), -1.0f);
      dot_q8_activation_batch(type, row.data(), std::span(pointers.data(), static_cast<size_t>(n)),
                              kCols, got.data(), 2);
      for (int64_t t = 0; t < n; ++t) {
        const float one = dot_q8_activation(type, row.data(), xs[static_cast<size_t>(t)], kCols);
        EXPECT_NEAR(got[static_cast<size_t>(2 * t)], one, 1e-5f * (1.0f + std::fabs(one)))
            << gguf::tensor_type_name(static_cast<uint32_t>(type)) << " batch " << n << " token "
            << t;
        EXPECT_EQ(got[static_cast<size_t>(2 * t + 1)], -1.0f);  // the stride is respected
      }
    }
  }
}

}  // namespace
}  // namespace moa::kernels
