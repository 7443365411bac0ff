// The AVX-512 F16/BF16 prefill GEMM (gemm_f16.cc) against the double-precision reference at
// odd sizes: row counts off the 32-row strips and 128-row panels, column counts off the
// 16-step pack chunks, the 256-step K blocks and BF16 pairs, token counts off the 12-token tile
// and the 16-token AMX tile; with the AMX-BF16 tiles where this CPU has them, and without.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gguf/quant.h"
#include "kernels/gemm_half.h"
#include "kernels/kernels.h"
#include "kernels/q8_activation.h"
#include "kernels/random_data.h"
#include "kernels/reference.h"

namespace moa::kernels {
namespace {

using gguf::TensorType;
using testing::max_abs_diff;
using testing::random_floats;

std::vector<uint8_t> stored_rows(TensorType type, const std::vector<float>& values, int64_t rows,
                                 int64_t cols) {
  const size_t row_bytes = gguf::row_bytes(type, cols);
  std::vector<uint8_t> bytes(row_bytes * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    gguf::quantize_row(type, values.data() + r * cols, bytes.data() + r * row_bytes, cols);
  return bytes;
}

// Products are exact in both formats, so only F32 summation order separates the kernel from
// the reference: the same bound as the F32 matvec tests. AMX on F16 also leaves out the product
// of the two BF16 remainders, under 2^-18 of each |w x| (values here within +-1: under
// 4e-6 * cols in all), inside the same bound, which a dropped high x low product (2^-9) breaks.
double tolerance(int64_t cols) { return 2e-6 * static_cast<double>(cols) + 1e-5; }

// The kernel variants this CPU can run: AMX tiles (where granted) and the AVX-512 micro-kernel.
std::vector<bool> amx_choices() {
  if (half_gemm_uses_amx()) return {true, false};
  return {false};
}

void expect_half_gemm_matches(TensorType type, int64_t rows, int64_t cols, int64_t n_tokens,
                              int n_threads, bool amx) {
  const std::vector<uint8_t> bytes = stored_rows(type, random_floats(rows * cols, 3), rows, cols);
  const WeightMatrix w{type, bytes.data(), rows, cols};
  const std::vector<float> x = random_floats(n_tokens * cols, 5);
  std::vector<float> rounded = x;
  round_activation_grid(type, rounded.data(), cols, n_tokens);
  std::vector<float> got(static_cast<size_t>(n_tokens * rows), -7.0f), want(got.size());
  matmul_half(w, rounded.data(), n_tokens, got.data(), n_threads, amx);
  reference::matmul(w, x.data(), n_tokens, want.data());
  EXPECT_LE(max_abs_diff(got, want), tolerance(cols))
      << gguf::tensor_type_name(static_cast<uint32_t>(type)) << " " << rows << "x" << cols
      << " tokens " << n_tokens << " threads " << n_threads << (amx ? " amx" : " avx512");
}

TEST(HalfGemm, MatchesReferenceAtOddSizes) {
  for (TensorType type : {TensorType::kF16, TensorType::kBF16}) {
    if (half_gemm_kind(type) == HalfGemm::kNone) continue;
    for (bool amx : amx_choices()) {
      for (int64_t rows : {1, 33, 130}) {
        for (int64_t cols : {1, 15, 34, 513}) {
          for (int64_t n_tokens : {1, 13})
            expect_half_gemm_matches(type, rows, cols, n_tokens, 2, amx);
        }
      }
      expect_half_gemm_matches(type, 17, 257, 25, 2, amx);
      expect_half_gemm_matches(type, 300, 1100, 40, 1, amx);  // several K blocks, partial panel
      expect_half_gemm_matches(type, 40, 2048, 35, 2, amx);   // 4 KiB token rows, AMX tiled
      for (int64_t rows : {32, 64, 96, 320}) {
        for (int64_t cols : {64, 96}) expect_half_gemm_matches(type, rows, cols, 9, 2, amx);
      }
    }
  }
}

// The AMX path's split really carries F16 precision: weights and activations that BF16 alone
// would round (11 significant bits) still give the F16 products, within the F32 bound.
TEST(HalfGemm, AmxKeepsF16PrecisionThroughTheBf16Split) {
  if (!half_gemm_uses_amx()) GTEST_SKIP() << "no AMX-BF16 here (CPU, or OS tile permission)";
  const int64_t rows = 32, cols = 64, n_tokens = 16;
  std::vector<float> values(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < values.size(); ++i) values[i] = 1.0f + static_cast<float>(i % 7) / 1024;
  const std::vector<uint8_t> bytes = stored_rows(TensorType::kF16, values, rows, cols);
  const WeightMatrix w{TensorType::kF16, bytes.data(), rows, cols};
  std::vector<float> x(static_cast<size_t>(n_tokens * cols));
  for (size_t i = 0; i < x.size(); ++i) x[i] = 1.0f - static_cast<float>(i % 5) / 2048;
  std::vector<float> got(static_cast<size_t>(n_tokens * rows)), want(got.size());
  matmul_half(w, x.data(), n_tokens, got.data(), 1, true);
  reference::matmul(w, x.data(), n_tokens, want.data());
  // BF16-rounded operands would be off by up to 2^-8 per value here: about 0.25 on these sums.
  EXPECT_LE(max_abs_diff(got, want), 1e-4);
}

// matmul() picks the kernel for batches; its result must equal the reference too.
TEST(HalfGemm, MatmulBatchesUseItAndMatchTheReference) {
  for (TensorType type : {TensorType::kF16, TensorType::kBF16}) {
    const int64_t rows = 70, cols = 96, n_tokens = 19;
    const std::vector<uint8_t> bytes = stored_rows(type, random_floats(rows * cols, 9), rows, cols);
    const WeightMatrix w{type, bytes.data(), rows, cols};
    const std::vector<float> x = random_floats(n_tokens * cols, 10);
    std::vector<float> got(static_cast<size_t>(n_tokens * rows)), want(got.size());
    matmul(w, x.data(), n_tokens, got.data(), 2);  // AMX where granted
    reference::matmul(w, x.data(), n_tokens, want.data());
    EXPECT_LE(max_abs_diff(got, want), tolerance(cols))
        << gguf::tensor_type_name(static_cast<uint32_t>(type));
  }
}

// On a CPU with AVX-512 the F16 kernel is chosen (unless MOA_F32_KERNELS=1), so the odd-size
// test above really ran it; other types never take it.
TEST(HalfGemm, ChosenOnlyForHalfWeightsOnAvx512) {
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl");
  if (avx512 && low_precision_kernels_enabled()) {
    EXPECT_EQ(half_gemm_kind(TensorType::kF16), HalfGemm::kF16Fma);
    EXPECT_EQ(half_gemm_kind(TensorType::kBF16),
              __builtin_cpu_supports("avx512bf16") ? HalfGemm::kBf16Dot : HalfGemm::kNone);
  } else {
    EXPECT_EQ(half_gemm_kind(TensorType::kF16), HalfGemm::kNone);
  }
  EXPECT_EQ(half_gemm_kind(TensorType::kF32), HalfGemm::kNone);
  EXPECT_EQ(half_gemm_kind(TensorType::kQ8_0), HalfGemm::kNone);
}

}  // namespace
}  // namespace moa::kernels
