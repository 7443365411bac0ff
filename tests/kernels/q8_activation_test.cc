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
  round_activation_grid(TensorType::kQ4_K, unchanged.data(), 128, 3);
  EXPECT_EQ(unchanged, x);
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
