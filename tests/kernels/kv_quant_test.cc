// Q8_0 K/V rows: the stored bytes are ggml's block_q8_0 (whole-row blocks for head_dim 8 and 16),
// the SIMD widening agrees with the reference decoder, kv_bytes counts every byte, and head sizes
// that fit no block are refused with a clear error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "gguf/quant.h"
#include "kernels/kernels.h"
#include "kernels/random_data.h"
#include "kernels/reference.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

using testing::random_floats;

TEST(KvQuant, RowsOf32ValueBlocksAreGgmlQ8_0Bytes) {
  for (int64_t head_dim : {32, 64, 128}) {
    const auto x = random_floats(head_dim, 5, 3.0f);
    std::vector<uint8_t> got(kv_bytes(KvType::kQ8_0, head_dim, head_dim));
    std::vector<uint8_t> want(gguf::row_bytes(gguf::TensorType::kQ8_0, head_dim));
    ASSERT_EQ(got.size(), want.size());
    quantize_kv_row_q8_0(x.data(), head_dim, got.data());
    gguf::quantize_row(gguf::TensorType::kQ8_0, x.data(), want.data(), head_dim);
    EXPECT_EQ(got, want) << "head_dim " << head_dim;
    std::vector<float> widened(static_cast<size_t>(head_dim)), expected(widened.size());
    dequantize_kv_row_q8_0(got.data(), head_dim, widened.data());
    gguf::dequantize_row(gguf::TensorType::kQ8_0, want.data(), expected.data(), head_dim);
    EXPECT_EQ(widened, expected);
  }
}

TEST(KvQuant, ShortRowsAreOneBlockWithinHalfAStep) {
  for (int64_t head_dim : {4, 8, 16}) {
    const auto x = random_floats(4 * head_dim, 6, 2.0f);
    const size_t row = kv_bytes(KvType::kQ8_0, head_dim, head_dim);
    EXPECT_EQ(row, static_cast<size_t>(head_dim + 2));
    std::vector<uint8_t> stored(4 * row);
    for (int64_t r = 0; r < 4; ++r)
      quantize_kv_row_q8_0(x.data() + r * head_dim, head_dim, stored.data() + r * row);
    for (int64_t r = 0; r < 4; ++r) {
      std::vector<float> widened(static_cast<size_t>(head_dim));
      dequantize_kv_row_q8_0(stored.data() + r * row, head_dim, widened.data());
      double amax = 0.0;
      for (int64_t i = 0; i < head_dim; ++i)
        amax = std::max(amax, std::fabs(double{x[r * head_dim + i]}));
      for (int64_t i = 0; i < head_dim; ++i) {
        const int64_t index = r * head_dim + i;
        EXPECT_EQ(widened[i], reference::q8_0_kv_value(stored.data(), index, head_dim));
        EXPECT_LE(std::fabs(widened[i] - x[index]), amax / 127.0 * 0.51 + 1e-3);
      }
    }
  }
}

TEST(KvQuant, ZeroRowStaysZero) {
  const std::vector<float> zeros(64, 0.0f);
  std::vector<uint8_t> stored(kv_bytes(KvType::kQ8_0, 64, 64));
  quantize_kv_row_q8_0(zeros.data(), 64, stored.data());
  std::vector<float> widened(64, 1.0f);
  dequantize_kv_row_q8_0(stored.data(), 64, widened.data());
  EXPECT_EQ(widened, zeros);
}

TEST(KvQuant, BytesCountScalesAndValues) {
  EXPECT_EQ(kv_bytes(KvType::kF32, 128, 64), 512u);
  EXPECT_EQ(kv_bytes(KvType::kF16, 128, 64), 256u);
  EXPECT_EQ(kv_bytes(KvType::kQ8_0, 128, 64), 136u);  // 4 blocks of 34 bytes
  EXPECT_EQ(kv_bytes(KvType::kQ8_0, 16, 8), 20u);     // 2 rows of (scale + 8 values)
  EXPECT_EQ(kv_block_elements(KvType::kQ8_0, 96), 32);
  EXPECT_EQ(kv_block_elements(KvType::kF16, 96), 1);
}

TEST(KvQuant, HeadSizesThatFitNoBlockAreRefused) {
  EXPECT_THROW(check_kv_head_dim(KvType::kQ8_0, 24, "kv cache"), Error);
  EXPECT_THROW(check_kv_head_dim(KvType::kQ8_0, 80, "kv cache"), Error);
  EXPECT_NO_THROW(check_kv_head_dim(KvType::kQ8_0, 96, "kv cache"));
  EXPECT_NO_THROW(check_kv_head_dim(KvType::kF16, 24, "kv cache"));
  const std::vector<float> row(48, 1.0f);
  std::vector<uint8_t> stored(64);
  EXPECT_THROW(quantize_kv_row_q8_0(row.data(), 48, stored.data()), Error);
  const AttentionShape shape{2, 1, 48, 1.0f};
  const KvView view{KvType::kQ8_0, stored.data(), stored.data(), 48, 1};
  std::vector<float> out(96);
  EXPECT_THROW(attention(shape, row.data(), 1, 0, view, {}, out.data(), 1), Error);
}

}  // namespace
}  // namespace moa::kernels
