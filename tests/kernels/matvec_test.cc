// Optimised matvec/matmul against the double-precision reference on every stored format,
// with odd row counts, tails and both thread counts.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "gguf/quant.h"
#include "kernels/kernels.h"
#include "kernels/random_data.h"
#include "kernels/reference.h"
#include "kernels/row_dot.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

using gguf::TensorType;
using testing::f32_dot_tolerance;
using testing::make_matrix;
using testing::max_abs_diff;
using testing::random_floats;
using testing::StoredMatrix;

struct Shape {
  int64_t rows, cols;
};

void expect_matvec_matches(TensorType type, Shape shape, int n_threads) {
  const StoredMatrix m = make_matrix(type, shape.rows, shape.cols, 7);
  const std::vector<float> x = random_floats(shape.cols, 11);
  std::vector<float> got(static_cast<size_t>(shape.rows)), want(got.size());
  matvec(m.view, x.data(), got.data(), n_threads);
  reference::matvec(m.view, x.data(), want.data());
  EXPECT_LE(max_abs_diff(got, want), f32_dot_tolerance(shape.cols))
      << gguf::tensor_type_name(static_cast<uint32_t>(type)) << " " << shape.rows << "x"
      << shape.cols << " threads " << n_threads;
}

const TensorType kAllTypes[] = {TensorType::kF32,  TensorType::kF16,  TensorType::kBF16,
                                TensorType::kQ8_0, TensorType::kQ5_0, TensorType::kQ4_0,
                                TensorType::kQ6_K, TensorType::kQ5_K, TensorType::kQ4_K};

TEST(Matvec, MatchesReferenceOnEveryFormat) {
  for (TensorType type : kAllTypes) {
    for (Shape shape : {Shape{1, 256}, Shape{7, 512}, Shape{33, 768}, Shape{301, 1024}}) {
      for (int threads : {1, 2}) expect_matvec_matches(type, shape, threads);
    }
  }
}

// matvec reads up to kRowStreams rows in one row dot (separate memory streams); each row's result
// must be the bits of that row read alone, whichever rows are grouped and in whatever order.
TEST(Matvec, RowsReadTogetherEqualEachRowReadAlone) {
  for (TensorType type : kAllTypes) {
    const StoredMatrix m = make_matrix(type, 13, 512, 5);
    const std::vector<float> x = random_floats(512, 6);
    const RowDot dot(m.view, x.data());
    const std::vector<int64_t> rows = {12, 0, 7, 3};
    for (size_t count = 1; count <= kRowStreams; ++count) {
      std::vector<float> together(count);
      dot.dot_rows(std::span(rows.data(), count), together.data());
      for (size_t i = 0; i < count; ++i) {
        EXPECT_EQ(together[i], dot(rows[i])) << gguf::tensor_type_name(static_cast<uint32_t>(type))
                                             << " row " << rows[i] << " of " << count;
      }
    }
    const std::vector<int64_t> too_many(kRowStreams + 1, 0);
    std::vector<float> y(too_many.size());
    EXPECT_THROW(dot.dot_rows(too_many, y.data()), Error);
  }
}

TEST(Matvec, HandlesUnalignedColumnCountsOnFloatFormats) {
  for (TensorType type : {TensorType::kF32, TensorType::kF16, TensorType::kBF16}) {
    for (Shape shape : {Shape{3, 1}, Shape{5, 17}, Shape{9, 37}, Shape{300, 257}}) {
      expect_matvec_matches(type, shape, 2);
    }
  }
}

TEST(Matvec, ComputesAKnownProduct) {
  const std::vector<float> w = {1, 2, 3, -1, 0.5f, 4};
  const std::vector<float> x = {2, -1, 0.5f};
  std::vector<float> y(2);
  matvec({TensorType::kF32, w.data(), 2, 3}, x.data(), y.data(), 1);
  EXPECT_FLOAT_EQ(y[0], 1.5f);
  EXPECT_FLOAT_EQ(y[1], -0.5f);
}

TEST(Matvec, RejectsColumnsThatAreNotABlockMultiple) {
  std::vector<uint8_t> bytes(1024);
  const std::vector<float> x(100);
  std::vector<float> y(1);
  EXPECT_THROW(matvec({TensorType::kQ8_0, bytes.data(), 1, 100}, x.data(), y.data(), 1), Error);
  EXPECT_THROW(matvec({TensorType::kQ5_1, bytes.data(), 1, 64}, x.data(), y.data(), 1), Error);
}

TEST(Matmul, MatchesReferenceForBatches) {
  for (TensorType type : kAllTypes) {
    for (int64_t n_tokens : {2, 4, 5, 7, 33}) {
      const StoredMatrix m = make_matrix(type, 300, 512, 3);
      const std::vector<float> x = random_floats(n_tokens * 512, 5);
      std::vector<float> got(static_cast<size_t>(n_tokens * 300)), want(got.size());
      matmul(m.view, x.data(), n_tokens, got.data(), 2);
      reference::matmul(m.view, x.data(), n_tokens, want.data());
      EXPECT_LE(max_abs_diff(got, want), f32_dot_tolerance(512))
          << gguf::tensor_type_name(static_cast<uint32_t>(type)) << " tokens " << n_tokens;
    }
  }
}

// Q/K/V-like projections of one input, of different types and sizes, in one call: each equals
// its own matmul, for one token (one shared thread team), a small batch (row dots) and a GEMM
// batch (the int8 GEMM rounds the input once for Q4_K and Q6_K alike).
TEST(Matmul, SharedInputProjectionsEqualSeparateProducts) {
  const StoredMatrix a = make_matrix(TensorType::kQ8_0, 100, 256, 1);
  const StoredMatrix b = make_matrix(TensorType::kF16, 17, 256, 2);
  const StoredMatrix c = make_matrix(TensorType::kQ4_K, 300, 256, 3);
  const StoredMatrix d = make_matrix(TensorType::kQ6_K, 40, 256, 4);
  for (int64_t n_tokens : {1, 3, 9}) {
    const std::vector<float> x = random_floats(n_tokens * 256, 4);
    std::vector<float> ya(static_cast<size_t>(n_tokens * 100)),
        yb(static_cast<size_t>(n_tokens * 17)), yc(static_cast<size_t>(n_tokens * 300)),
        yd(static_cast<size_t>(n_tokens * 40));
    const Projection projections[] = {
        {a.view, ya.data()}, {b.view, yb.data()}, {c.view, yc.data()}, {d.view, yd.data()}};
    matmul_shared_input(projections, x.data(), n_tokens, 2);
    for (const auto& [m, got] :
         {std::pair{&a, &ya}, std::pair{&b, &yb}, std::pair{&c, &yc}, std::pair{&d, &yd}}) {
      std::vector<float> want(got->size());
      matmul(m->view, x.data(), n_tokens, want.data(), 1);
      EXPECT_EQ(*got, want) << gguf::tensor_type_name(static_cast<uint32_t>(m->view.type))
                            << " tokens " << n_tokens;
    }
  }
}

TEST(Matmul, SingleTokenEqualsMatvec) {
  const StoredMatrix m = make_matrix(TensorType::kQ4_K, 64, 256, 9);
  const std::vector<float> x = random_floats(256, 1);
  std::vector<float> a(64), b(64);
  matmul(m.view, x.data(), 1, a.data(), 2);
  matvec(m.view, x.data(), b.data(), 1);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace moa::kernels
