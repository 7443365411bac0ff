// The int8 prefill GEMM (kernels/gemm_int8.h) against the double-precision reference
// (reference::matmul: the same rounded activations times the dequantized weights, summed in
// double) for every block-quantized type, at sizes that leave partial token tiles, partial
// 16-row groups and partial K chunks, with the AVX-512 VNNI and the portable micro-kernels.
#include "kernels/gemm_int8.h"

#include <gtest/gtest.h>

#include <vector>

#include "gguf/quant.h"
#include "kernels/random_data.h"
#include "kernels/reference.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

using gguf::TensorType;
using testing::f32_dot_tolerance;
using testing::make_matrix;
using testing::max_abs_diff;
using testing::random_floats;
using testing::StoredMatrix;

const TensorType kTypes[] = {TensorType::kQ8_0, TensorType::kQ5_0, TensorType::kQ4_0,
                             TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K};

struct Case {
  int64_t rows, cols, tokens;
  int threads;
};

void expect_matches_reference(const StoredMatrix& m, int64_t tokens, int threads, bool portable) {
  const WeightMatrix& w = m.view;
  const std::vector<float> x = random_floats(tokens * w.cols, 5);
  std::vector<float> got(static_cast<size_t>(tokens * w.rows), -1.0f), want(got.size());
  gemm_int8(w, x.data(), tokens, got.data(), threads, portable);
  reference::matmul(w, x.data(), tokens, want.data());
  EXPECT_LE(max_abs_diff(got, want), f32_dot_tolerance(w.cols))
      << gguf::tensor_type_name(static_cast<uint32_t>(w.type)) << " " << w.rows << "x" << w.cols
      << " tokens " << tokens << " threads " << threads << (portable ? " portable" : "");
}

// Rows not a multiple of 16 or 32, tokens not a multiple of the tile's 4 or 6 (every tail of 1 to
// 5 tokens), rows longer than one 512-value chunk (768, 1280) so later chunks accumulate onto
// earlier ones.
TEST(GemmInt8, MatchesTheDoubleReferenceAtOddSizes) {
  for (TensorType type : kTypes) {
    for (const Case& c :
         {Case{37, 256, 9, 2}, Case{16, 768, 4, 1}, Case{71, 1280, 7, 2}, Case{5, 512, 1, 1},
          Case{33, 256, 3, 2}, Case{19, 512, 11, 1}, Case{40, 256, 14, 2}}) {
      const StoredMatrix m = make_matrix(type, c.rows, c.cols, 7);
      for (bool portable : {false, true})
        expect_matches_reference(m, c.tokens, c.threads, portable);
    }
  }
}

// Q8_0 bytes at both ends of the int8 range (-128 never comes from ggml's quantizer but is a
// valid stored value) and activations whose blocks round to +-127: the offset-by-128 sums stay
// exact.
TEST(GemmInt8, Q8_0HandlesTheWholeByteRange) {
  StoredMatrix m = make_matrix(TensorType::kQ8_0, 20, 256, 3);
  auto* blocks = reinterpret_cast<gguf::BlockQ8_0*>(m.bytes.data());
  for (int64_t b = 0; b < 20 * 8; ++b) {
    for (int i = 0; i < 32; i += 3) blocks[b].qs[i] = static_cast<int8_t>(i % 2 == 0 ? -128 : 127);
  }
  for (bool portable : {false, true}) expect_matches_reference(m, 6, 2, portable);
}

TEST(GemmInt8, ThreadCountDoesNotChangeTheResult) {
  for (TensorType type : {TensorType::kQ8_0, TensorType::kQ4_K}) {
    const StoredMatrix m = make_matrix(type, 100, 512, 4);
    const std::vector<float> x = random_floats(10 * 512, 6);
    std::vector<float> one(1000), two(1000);
    gemm_int8(m.view, x.data(), 10, one.data(), 1);
    gemm_int8(m.view, x.data(), 10, two.data(), 2);
    EXPECT_EQ(one, two) << gguf::tensor_type_name(static_cast<uint32_t>(type));
  }
}

TEST(GemmInt8, RejectsUnsupportedTypesAndPartialBlocks) {
  std::vector<uint8_t> bytes(4096);
  const std::vector<float> x(2 * 256);
  std::vector<float> y(8);
  EXPECT_THROW(gemm_int8({TensorType::kF16, bytes.data(), 2, 256}, x.data(), 2, y.data(), 1),
               Error);
  EXPECT_THROW(gemm_int8({TensorType::kQ4_K, bytes.data(), 2, 160}, x.data(), 2, y.data(), 1),
               Error);
  Int8Batch q8_0_batch;
  round_int8_batch(TensorType::kQ8_0, x.data(), 2, 256, q8_0_batch, 1);
  EXPECT_THROW(gemm_int8({TensorType::kQ4_K, bytes.data(), 2, 256}, q8_0_batch, y.data(), 1),
               Error);
  EXPECT_FALSE(int8_gemm_supports(TensorType::kBF16));
  EXPECT_TRUE(int8_gemm_supports(TensorType::kQ6_K));
}

}  // namespace
}  // namespace moa::kernels
