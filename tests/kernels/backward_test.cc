// Backward kernels of RMS norm, SwiGLU, RoPE and the weight products: each double reference is
// checked against central finite differences of its double forward (loss sum(r * y) with random
// r), then each F32 kernel against its reference on random and edge-case shapes.
#include "kernels/backward.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "gguf/quant.h"
#include "kernels/backward_reference.h"
#include "kernels/gradient_check.h"
#include "kernels/random_data.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

using testing::dot;
using testing::gradient_error;
using testing::numeric_gradient;
using testing::random_floats;
using testing::relative_error;
using testing::to_double;

TEST(RmsNormBackward, ReferenceMatchesFiniteDifferences) {
  const int64_t n = 13, tokens = 3;
  const auto x = to_double(random_floats(n * tokens, 1, 2.0f));
  const auto w = to_double(random_floats(n, 2)), r = to_double(random_floats(n * tokens, 3));
  std::vector<double> dx(x.size());
  reference::rms_norm_backward(x.data(), w.data(), r.data(), n, tokens, 1e-5, dx.data());
  const auto numeric = numeric_gradient(x, [&](const std::vector<double>& xs) {
    std::vector<double> y(xs.size());
    reference::rms_norm(xs.data(), w.data(), n, tokens, 1e-5, y.data());
    return dot(r, y);
  });
  EXPECT_LE(gradient_error(numeric, dx), 1e-8);
}

TEST(RmsNormBackward, MatchesReference) {
  for (int64_t n : {1, 7, 64, 4097}) {
    const auto x = random_floats(3 * n, 4, 4.0f), w = random_floats(n, 5);
    const auto dy = random_floats(3 * n, 6);
    std::vector<float> got(x.size());
    rms_norm_backward(x.data(), w.data(), dy.data(), n, 3, 1e-5f, got.data());
    std::vector<double> want(x.size());
    reference::rms_norm_backward(to_double(x).data(), to_double(w).data(), to_double(dy).data(), n,
                                 3, 1e-5, want.data());
    // Relative to the size of the two terms that cancel (for n = 1 dx is eps / x^2 of them).
    double terms = 0.0;
    for (int64_t t = 0; t < 3; ++t) {
      double sum = 0.0;
      for (int64_t i = 0; i < n; ++i) sum += x[t * n + i] * x[t * n + i];
      for (int64_t i = 0; i < n; ++i) {
        terms = std::max(terms, std::fabs(dy[t * n + i] * w[i]) / std::sqrt(sum / n));
      }
    }
    EXPECT_LE(relative_error(got, want, terms), 2e-6) << n;
  }
}

TEST(SwigluBackward, ReferenceMatchesFiniteDifferences) {
  const int64_t n = 40;
  const auto gate = to_double(random_floats(n, 7, 6.0f)), up = to_double(random_floats(n, 8));
  const auto r = to_double(random_floats(n, 9));
  std::vector<double> d_gate(n), d_up(n);
  reference::swiglu_backward(gate.data(), up.data(), r.data(), n, d_gate.data(), d_up.data());
  auto loss_of = [&](const std::vector<double>& g, const std::vector<double>& u) {
    std::vector<double> y(n);
    reference::swiglu(g.data(), u.data(), n, y.data());
    return dot(r, y);
  };
  EXPECT_LE(gradient_error(numeric_gradient(gate, [&](auto& g) { return loss_of(g, up); }), d_gate),
            1e-8);
  EXPECT_LE(gradient_error(numeric_gradient(up, [&](auto& u) { return loss_of(gate, u); }), d_up),
            1e-8);
}

TEST(SwigluBackward, MatchesReferenceIncludingExtremes) {
  auto gate = random_floats(1001, 10, 10.0f);
  gate[0] = -200.0f;
  gate[1] = 200.0f;
  gate[2] = 0.0f;
  const auto up = random_floats(1001, 11), dh = random_floats(1001, 12);
  std::vector<float> d_gate(gate.size()), d_up(gate.size());
  swiglu_backward(gate.data(), up.data(), dh.data(), 1001, d_gate.data(), d_up.data());
  std::vector<double> want_gate(gate.size()), want_up(gate.size());
  reference::swiglu_backward(to_double(gate).data(), to_double(up).data(), to_double(dh).data(),
                             1001, want_gate.data(), want_up.data());
  EXPECT_LE(relative_error(d_gate, want_gate), 1e-6);
  EXPECT_LE(relative_error(d_up, want_up), 1e-6);
  EXPECT_FLOAT_EQ(d_gate[1], dh[1] * up[1]);  // silu'(g) -> 1 for large g
  EXPECT_NEAR(d_gate[0], 0.0f, 1e-30f);
  EXPECT_FLOAT_EQ(d_gate[2], 0.5f * dh[2] * up[2]);  // silu'(0) = 1/2
}

const std::vector<float> kFactors = {1, 1, 2, 4, 8, 8, 8, 8, 1, 1, 2, 4, 8, 8, 8, 8,
                                     1, 1, 2, 4, 8, 8, 8, 8, 1, 1, 2, 4, 8, 8, 8, 8};

// Every RoPE variant: interleaved/neox pairs, partial rotation, linear scaling, llama3 factors.
std::vector<RopeParams> rope_variants() {
  std::vector<RopeParams> variants;
  for (bool neox : {false, true}) {
    for (int64_t n_rot : {int64_t{64}, int64_t{32}}) {
      for (bool llama3 : {false, true}) {
        variants.push_back(
            {neox, n_rot, 500000.0f, llama3 ? 1.0f : 0.25f, llama3 ? kFactors.data() : nullptr});
      }
    }
  }
  return variants;
}

TEST(RopeBackward, ReferenceMatchesFiniteDifferences) {
  const std::vector<int32_t> positions = {0, 3, 17};
  for (const RopeParams& p : rope_variants()) {
    const auto x = to_double(random_floats(3 * 2 * 66, 13)),
               r = to_double(random_floats(x.size(), 14));
    auto dx = r;
    reference::rope_backward(dx.data(), 3, 2, 66, positions.data(), p);
    const auto numeric = numeric_gradient(x, [&](const std::vector<double>& xs) {
      auto y = xs;
      reference::rope(y.data(), 3, 2, 66, positions.data(), p);
      return dot(r, y);
    });
    EXPECT_LE(gradient_error(numeric, dx), 1e-8) << p.neox << " " << p.n_rot;
  }
}

TEST(RopeBackward, MatchesReferenceAndUndoesRope) {
  const std::vector<int32_t> positions = {0, 1, 17, 4095};
  for (const RopeParams& p : rope_variants()) {
    const auto dy = random_floats(4 * 3 * 64, 15);
    auto got = dy;
    rope_backward(got.data(), 4, 3, 64, positions.data(), p);
    auto want = to_double(dy);
    reference::rope_backward(want.data(), 4, 3, 64, positions.data(), p);
    EXPECT_LE(relative_error(got, want), 1e-6) << p.neox << " " << p.n_rot;
    rope(got.data(), 4, 3, 64, positions.data(), p);  // R R^T = identity
    EXPECT_LE(relative_error(got, to_double(dy)), 1e-6);
  }
}

struct StoredWeights {
  std::vector<uint8_t> bytes;
  WeightMatrix view;
};

// Whole blocks per row, so the rows quantize as one run of blocks.
StoredWeights quantized(gguf::TensorType type, int64_t rows, int64_t cols, uint32_t seed) {
  StoredWeights w;
  w.bytes.resize(gguf::row_bytes(type, rows * cols));
  gguf::quantize_row(type, random_floats(rows * cols, seed).data(), w.bytes.data(), rows * cols);
  w.view = {type, w.bytes.data(), rows, cols};
  return w;
}

TEST(MatmulTransposedBackward, ReferenceMatchesFiniteDifferences) {
  const StoredWeights w = quantized(gguf::TensorType::kQ4_K, 9, 256, 16);
  const auto x = to_double(random_floats(2 * 256, 17)), r = to_double(random_floats(2 * 9, 18));
  std::vector<double> dx(x.size());
  reference::matmul_transposed(w.view, r.data(), 2, dx.data());
  const auto numeric = numeric_gradient(x, [&](const std::vector<double>& xs) {
    std::vector<double> y(r.size());
    reference::matmul(w.view, xs.data(), 2, y.data());
    return dot(r, y);
  });
  EXPECT_LE(gradient_error(numeric, dx), 1e-8);
}

TEST(MatmulTransposedBackward, MatchesReferenceOnEveryStoredType) {
  using gguf::TensorType;
  struct Shape {
    int64_t rows, cols, tokens;
  };
  // Rows past one sgemm panel, columns past one task panel, tokens past one token block.
  const Shape shapes[] = {{3, 256, 1}, {300, 768, 9}, {40, 512, 530}};
  for (TensorType type : {TensorType::kF32, TensorType::kF16, TensorType::kBF16, TensorType::kQ8_0,
                          TensorType::kQ4_0, TensorType::kQ4_K, TensorType::kQ6_K}) {
    for (const Shape& s : shapes) {
      const StoredWeights w = quantized(type, s.rows, s.cols, 19);
      const auto dy = random_floats(s.tokens * s.rows, 20);
      std::vector<float> got(static_cast<size_t>(s.tokens * s.cols));
      matmul_transposed(w.view, dy.data(), s.tokens, got.data(), 2);
      std::vector<double> want(got.size());
      reference::matmul_transposed(w.view, to_double(dy).data(), s.tokens, want.data());
      EXPECT_LE(relative_error(got, want), 1e-5)
          << gguf::tensor_type_name(static_cast<uint32_t>(type)) << " " << s.rows << "x" << s.cols
          << " tokens " << s.tokens;
    }
  }
}

TEST(MatmulTransposedBackward, DoesNotDependOnTheThreadCount) {
  const StoredWeights w = quantized(gguf::TensorType::kQ8_0, 100, 1024, 21);
  const auto dy = random_floats(20 * 100, 22);
  std::vector<float> one(20 * 1024), three(one.size());
  matmul_transposed(w.view, dy.data(), 20, one.data(), 1);
  matmul_transposed(w.view, dy.data(), 20, three.data(), 3);
  EXPECT_EQ(one, three);
}

TEST(MatmulTransposedBackward, RejectsAPartialBlockRow) {
  std::vector<uint8_t> bytes(1024);
  const WeightMatrix w{gguf::TensorType::kQ8_0, bytes.data(), 2, 40};
  std::vector<float> dy(2), dx(40);
  EXPECT_THROW(matmul_transposed(w, dy.data(), 1, dx.data(), 1), Error);
}

// Every value of W^T within the Q8_0 step of its block: half the scale max|block| / 127, plus
// the scale's F16 rounding (2^-11 relative) over up to 127 steps.
TEST(TransposeToQ8_0, HoldsEveryValueWithinHalfAStepOfItsBlock) {
  using gguf::TensorType;
  for (TensorType type :
       {TensorType::kF32, TensorType::kQ8_0, TensorType::kQ4_K, TensorType::kQ6_K}) {
    const int64_t rows = 96, cols = 512;
    const StoredWeights w = quantized(type, rows, cols, 23);
    const TransposedWeight t = transpose_to_q8_0(w.view, 2);
    ASSERT_EQ(t.w.rows, cols);
    ASSERT_EQ(t.w.cols, rows);
    ASSERT_EQ(t.w.type, TensorType::kQ8_0);
    std::vector<float> original(static_cast<size_t>(rows * cols)), back(original.size());
    gguf::dequantize_row(type, w.bytes.data(), original.data(), rows * cols);
    gguf::dequantize_row(TensorType::kQ8_0, t.bytes.data(), back.data(), rows * cols);
    for (int64_t c = 0; c < cols; ++c) {
      for (int64_t b = 0; b < rows; b += 32) {
        float block_max = 0.0f;
        for (int64_t r = b; r < b + 32; ++r) {
          block_max = std::max(block_max, std::abs(original[static_cast<size_t>(r * cols + c)]));
        }
        const float step = block_max / 127.0f;
        for (int64_t r = b; r < b + 32; ++r) {
          ASSERT_NEAR(back[static_cast<size_t>(c * rows + r)],
                      original[static_cast<size_t>(r * cols + c)], step * (0.5f + 127.0f / 2048.0f))
              << gguf::tensor_type_name(static_cast<uint32_t>(type)) << " row " << r << " col "
              << c;
        }
      }
    }
  }
}

// matmul on the transpose (the int8 GEMM where the CPU has it, rounding dy to Q8_0) against the
// exact double product: within the two Q8_0 roundings, ~0.5% of the result's size.
TEST(TransposeToQ8_0, ProductStaysCloseToTheExactTransposedProduct) {
  using gguf::TensorType;
  for (TensorType type : {TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_K}) {
    for (int64_t tokens : {int64_t{3}, int64_t{9}, int64_t{130}}) {
      const int64_t rows = 320, cols = 768;
      const StoredWeights w = quantized(type, rows, cols, 24);
      const TransposedWeight t = transpose_to_q8_0(w.view, 2);
      const auto dy = random_floats(tokens * rows, 25);
      std::vector<float> got(static_cast<size_t>(tokens * cols));
      matmul(t.w, dy.data(), tokens, got.data(), 2);
      std::vector<double> want(got.size());
      reference::matmul_transposed(w.view, to_double(dy).data(), tokens, want.data());
      EXPECT_LE(relative_error(got, want), 1.5e-2)
          << gguf::tensor_type_name(static_cast<uint32_t>(type)) << " tokens " << tokens;
    }
  }
}

TEST(TransposeToQ8_0, DoesNotDependOnTheThreadCountAndRejectsPartialBlocks) {
  const StoredWeights w = quantized(gguf::TensorType::kQ4_K, 64, 512, 26);
  EXPECT_EQ(transpose_to_q8_0(w.view, 1).bytes, transpose_to_q8_0(w.view, 3).bytes);
  const StoredWeights odd = quantized(gguf::TensorType::kQ8_0, 40, 64, 27);
  EXPECT_THROW((void)transpose_to_q8_0(odd.view, 1), Error);
  EXPECT_FALSE(transpose_to_q8_0_pays(odd.view));
  EXPECT_FALSE(transpose_to_q8_0_pays(quantized(gguf::TensorType::kF16, 64, 64, 28).view));
}

}  // namespace
}  // namespace moa::kernels
