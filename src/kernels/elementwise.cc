// Row-wise and elementwise kernels of the forward pass: RMS norm, SwiGLU, residual adds, biases
// and rotary position embedding. They are cheap next to the matmuls, so they are SIMD over one
// row and single-threaded; RoPE computes each token's angles once (in double) for all heads.
#include <algorithm>
#include <cmath>
#include <vector>

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "kernels/exp_vector.h"
#include "kernels/kernels.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

float sum_of_squares(const float* x, int64_t n) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  auto acc0 = hn::Zero(d), acc1 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    const auto a = hn::LoadU(d, x + i), b = hn::LoadU(d, x + i + lanes);
    acc0 = hn::MulAdd(a, a, acc0);
    acc1 = hn::MulAdd(b, b, acc1);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
  for (; i < n; ++i) sum += x[i] * x[i];
  return sum;
}

// Rotates `n_pairs` pairs (x[first[i]], x[first[i] + pair_offset]) by the given angles.
void rotate_pairs(float* x, int64_t n_pairs, bool neox, const float* cos_t, const float* sin_t) {
  for (int64_t i = 0; i < n_pairs; ++i) {
    float* a = neox ? x + i : x + 2 * i;
    float* b = neox ? x + i + n_pairs : x + 2 * i + 1;
    const float x0 = *a, x1 = *b;
    *a = x0 * cos_t[i] - x1 * sin_t[i];
    *b = x0 * sin_t[i] + x1 * cos_t[i];
  }
}

}  // namespace

void rms_norm(const float* x, const float* weight, int64_t n, int64_t n_tokens, float eps,
              float* y) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xt = x + t * n;
    float* yt = y + t * n;
    const float inv = 1.0f / std::sqrt(sum_of_squares(xt, n) / static_cast<float>(n) + eps);
    const auto vinv = hn::Set(d, inv);
    int64_t i = 0;
    for (; i + lanes <= n; i += lanes) {
      hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(d, xt + i), vinv), hn::LoadU(d, weight + i)), d, yt + i);
    }
    for (; i < n; ++i) yt[i] = xt[i] * inv * weight[i];
  }
}

void swiglu(const float* gate, const float* up, int64_t n, float* out) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto one = hn::Set(d, 1.0f);
  const auto exp_limit = hn::Set(d, 88.0f);  // exp stays finite; silu(g < -88) is ~0 anyway
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto g = hn::LoadU(d, gate + i);
    const auto e = hn::CallExp(d, hn::Min(hn::Neg(g), exp_limit));
    hn::StoreU(hn::Mul(hn::Div(g, hn::Add(one, e)), hn::LoadU(d, up + i)), d, out + i);
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void exp_nonpositive(const float* x, int64_t n, float* out) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(exp_nonpositive(d, hn::LoadU(d, x + i)), d, out + i);
  if (i < n) {  // the tail through one padded vector, so every value takes the vector path
    HWY_ALIGN float tail[hn::MaxLanes(DF())] = {};
    std::copy(x + i, x + n, tail);
    hn::Store(exp_nonpositive(d, hn::Load(d, tail)), d, tail);
    std::copy(tail, tail + (n - i), out + i);
  }
}

void add_inplace(float* x, const float* y, int64_t n) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(hn::Add(hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, x + i);
  }
  for (; i < n; ++i) x[i] += y[i];
}

void add_bias(const float* bias, int64_t n, int64_t n_tokens, float* y) {
  for (int64_t t = 0; t < n_tokens; ++t) add_inplace(y + t * n, bias, n);
}

void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions,
          const RopeParams& params) {
  if (params.n_rot <= 0 || params.n_rot > head_dim || params.n_rot % 2 != 0) {
    fail("rope: n_rot {}: expected an even count in 1..head_dim ({})", params.n_rot, head_dim);
  }
  const int64_t n_pairs = params.n_rot / 2;
  std::vector<float> cos_t(static_cast<size_t>(n_pairs)), sin_t(static_cast<size_t>(n_pairs));
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t i = 0; i < n_pairs; ++i) {
      double theta = positions[t] *
                     std::pow(static_cast<double>(params.freq_base),
                              -2.0 * static_cast<double>(i) / static_cast<double>(params.n_rot)) *
                     params.freq_scale;
      if (params.freq_factors != nullptr) theta /= params.freq_factors[i];
      cos_t[static_cast<size_t>(i)] = static_cast<float>(std::cos(theta));
      sin_t[static_cast<size_t>(i)] = static_cast<float>(std::sin(theta));
    }
    for (int64_t h = 0; h < n_heads; ++h) {
      rotate_pairs(x + (t * n_heads + h) * head_dim, n_pairs, params.neox, cos_t.data(),
                   sin_t.data());
    }
  }
}

}  // namespace moa::kernels
