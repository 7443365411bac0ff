// RMS norm, SwiGLU, adds and RoPE against the double-precision reference and hand values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/random_data.h"
#include "kernels/reference.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

using testing::max_abs_diff;
using testing::random_floats;

TEST(RmsNorm, MatchesReference) {
  for (int64_t n : {1, 7, 64, 4097}) {
    const auto x = random_floats(3 * n, 1, 4.0f), w = random_floats(n, 2);
    std::vector<float> got(x.size()), want(x.size());
    rms_norm(x.data(), w.data(), n, 3, 1e-5f, got.data());
    reference::rms_norm(x.data(), w.data(), n, 3, 1e-5f, want.data());
    EXPECT_LE(max_abs_diff(got, want), 1e-5) << n;
  }
}

TEST(ExpNonpositive, MatchesDoubleExpWithinItsStatedError) {
  std::vector<double> xs = {
      0.0, -1e-30, -0.5 * std::numbers::ln2, -std::numbers::ln2, -1.0, -10.5, -86.99, -87.0};
  for (int i = 0; i <= 200000; ++i) xs.push_back(-87.0 * i / 200000.0);
  std::vector<float> x(xs.begin(), xs.end()), got(x.size());
  exp_nonpositive(x.data(), static_cast<int64_t>(x.size()), got.data());
  double worst = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(static_cast<double>(x[i]));
    worst = std::max(worst, std::abs(got[i] - want) / want);
  }
  EXPECT_LE(worst, 1.2e-7);  // measured 8.0e-8 (a degree-6 Taylor e^r: 2.2e-7)
  EXPECT_EQ(got[0], 1.0f);
  // Below the floor every input counts as the floor: a positive, finite weight.
  const std::vector<float> far = {-88.0f, -1e30f, -std::numeric_limits<float>::max()};
  std::vector<float> far_got(far.size());
  exp_nonpositive(far.data(), 3, far_got.data());
  for (float e : far_got) EXPECT_FLOAT_EQ(e, std::exp(-87.0f));
}

TEST(RmsNorm, NormalisesAKnownRow) {
  const std::vector<float> x = {3, 4}, w = {1, 2};
  std::vector<float> y(2);
  rms_norm(x.data(), w.data(), 2, 1, 0.0f, y.data());
  const float rms = std::sqrt(12.5f);
  EXPECT_FLOAT_EQ(y[0], 3 / rms);
  EXPECT_FLOAT_EQ(y[1], 8 / rms);
}

TEST(Swiglu, MatchesReferenceIncludingExtremes) {
  auto gate = random_floats(1001, 3, 10.0f);
  gate[0] = -200.0f;
  gate[1] = 200.0f;
  gate[2] = 0.0f;
  const auto up = random_floats(1001, 4);
  std::vector<float> got(gate.size()), want(gate.size());
  swiglu(gate.data(), up.data(), 1001, got.data());
  reference::swiglu(gate.data(), up.data(), 1001, want.data());
  EXPECT_LE(max_abs_diff(got, want), 1e-5);
  EXPECT_FLOAT_EQ(got[1], 200.0f * up[1]);
  EXPECT_EQ(got[2], 0.0f);
}

TEST(AddInplace, AddsEveryElement) {
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
  const std::vector<float> y(17, 0.5f);
  add_inplace(x.data(), y.data(), 17);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_FLOAT_EQ(x[i], static_cast<float>(i) + 1.5f);
}

TEST(AddBias, AddsBiasToEveryToken) {
  std::vector<float> y(6, 1.0f);
  const std::vector<float> bias = {1, 2, 3};
  add_bias(bias.data(), 3, 2, y.data());
  EXPECT_EQ(y, (std::vector<float>{2, 3, 4, 2, 3, 4}));
}

TEST(Rope, MatchesReferenceForEveryVariant) {
  const std::vector<float> factors = {1, 1, 2, 4, 8, 8, 8, 8, 1, 1, 2, 4, 8, 8, 8, 8,
                                      1, 1, 2, 4, 8, 8, 8, 8, 1, 1, 2, 4, 8, 8, 8, 8};
  const std::vector<int32_t> positions = {0, 1, 17, 4095};
  for (bool neox : {false, true}) {
    for (int64_t n_rot : {int64_t{64}, int64_t{32}}) {
      for (bool llama3 : {false, true}) {
        RopeParams p{neox, n_rot, 500000.0f, llama3 ? 1.0f : 0.25f,
                     llama3 ? factors.data() : nullptr};
        auto got = random_floats(4 * 3 * 64, 5);
        auto want = got;
        rope(got.data(), 4, 3, 64, positions.data(), p);
        reference::rope(want.data(), 4, 3, 64, positions.data(), p);
        EXPECT_LE(max_abs_diff(got, want), 1e-5) << neox << " " << n_rot << " " << llama3;
      }
    }
  }
}

TEST(Rope, RotatesTheExpectedPairs) {
  // head_dim 4, n_rot 4: pair 0 turns by pos radians, pair 1 by pos / base^(1/2).
  const int32_t pos = 1;
  std::vector<float> normal = {1, 0, 1, 0}, neox = {1, 1, 0, 0};
  rope(normal.data(), 1, 1, 4, &pos, {false, 4, 100.0f, 1.0f, nullptr});
  rope(neox.data(), 1, 1, 4, &pos, {true, 4, 100.0f, 1.0f, nullptr});
  EXPECT_NEAR(normal[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(normal[1], std::sin(1.0), 1e-6);
  EXPECT_NEAR(normal[2], std::cos(0.1), 1e-6);
  EXPECT_NEAR(normal[3], std::sin(0.1), 1e-6);
  EXPECT_NEAR(neox[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(neox[2], std::sin(1.0), 1e-6);
  EXPECT_NEAR(neox[1], std::cos(0.1), 1e-6);
  EXPECT_NEAR(neox[3], std::sin(0.1), 1e-6);
}

TEST(Rope, LeavesDimsBeyondNRotAndPositionZeroUntouched) {
  const int32_t pos[2] = {0, 5};
  auto x = random_floats(2 * 8, 6);
  const auto before = x;
  rope(x.data(), 2, 1, 8, pos, {false, 4, 10000.0f, 1.0f, nullptr});
  for (int i = 0; i < 8; ++i)
    EXPECT_FLOAT_EQ(x[static_cast<size_t>(i)], before[static_cast<size_t>(i)]);
  for (int i = 12; i < 16; ++i)
    EXPECT_EQ(x[static_cast<size_t>(i)], before[static_cast<size_t>(i)]);
  EXPECT_NE(x[8], before[8]);
}

TEST(Rope, RejectsOddNRot) {
  std::vector<float> x(8);
  const int32_t pos = 0;
  EXPECT_THROW(rope(x.data(), 1, 1, 8, &pos, {false, 3, 10000.0f, 1.0f, nullptr}), Error);
}

}  // namespace
}  // namespace moa::kernels
