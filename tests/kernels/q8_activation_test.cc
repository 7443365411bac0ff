// Q8_0 activation rounding (the llama.cpp rule) and the int8 row dots built on it.
#include "kernels/q8_activation.h"

#include <gtest/gtest.h>

#include <cmath>
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

// The GEMM path's rounding equals the reference rule bit for bit for every rounded type (F16
// values include ones beyond F16's subnormal and normal ranges), and leaves other types alone.
TEST(Q8Activation, GridRoundingEqualsTheReferenceActivation) {
  std::vector<float> x = random_floats(3 * 128, 8);
  x[5] = 1e-6f;    // an F16 subnormal
  x[6] = 1e-9f;    // below F16's range: rounds to zero
  x[7] = 70000.f;  // above F16's range: rounds to infinity
  for (TensorType type : {TensorType::kF16, TensorType::kQ8_0, TensorType::kQ4_0}) {
    std::vector<float> rounded = x;
    round_activation_grid(type, rounded.data(), 128, 3);
    for (int64_t r = 0; r < 3; ++r) {
      const std::vector<float> want = reference::activation_for(type, x.data() + r * 128, 128);
      for (int64_t i = 0; i < 128; ++i) {
        ASSERT_EQ(rounded[r * 128 + i], want[i])
            << gguf::tensor_type_name(static_cast<uint32_t>(type)) << " " << r << " " << i;
      }
    }
  }
  std::vector<float> unchanged = x;
  round_activation_grid(TensorType::kBF16, unchanged.data(), 128, 3);
  EXPECT_EQ(unchanged, x);
  std::vector<float> wide = random_floats(2 * 512, 9);  // Q8_K blocks are 256 values
  for (TensorType type : {TensorType::kQ4_K, TensorType::kQ6_K}) {
    std::vector<float> rounded = wide;
    round_activation_grid(type, rounded.data(), 512, 2);
    for (int64_t r = 0; r < 2; ++r) {
      const std::vector<float> want = reference::activation_for(type, wide.data() + r * 512, 512);
      for (int64_t i = 0; i < 512; ++i) ASSERT_EQ(rounded[r * 512 + i], want[i]) << r << " " << i;
    }
  }
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
  for (TensorType type : {TensorType::kQ4_K, TensorType::kQ6_K}) {
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
    if (type == TensorType::kQ4_K) {
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
}

// Batch dots (1..8 tokens) equal one dot per token, for both weight types.
TEST(Q8Activation, BatchDotEqualsOneDotPerToken) {
  constexpr int64_t kCols = 512;
  const std::vector<float> w_values = random_floats(kCols, 4);
  for (TensorType type : {TensorType::kQ8_0, TensorType::kQ4_0}) {
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
