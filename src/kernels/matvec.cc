// Matrix-vector product directly on GGUF storage formats. Each row is dequantized in registers
// (Highway SIMD, at most 16 F32 lanes so one vector never straddles a 16/32-element scale group)
// and multiplied with the F32 activation; nothing is dequantized to memory, so the kernel streams
// the weights once and stays memory-bandwidth bound. The activation stays F32, except where
// llama.cpp rounds it: to F16 for F16 weights, to Q8_0 blocks for Q8_0 and Q4_0 weights
// (kernels/q8_activation.h).
// Rows are split over OpenMP threads.
#include <algorithm>
#include <vector>

#include "gguf/quant.h"
#include "hwy/highway.h"
#include "kernels/half.h"
#include "kernels/kernels.h"
#include "kernels/q8_activation.h"
#include "kernels/row_dot.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::CappedTag<float, 16>;  // quant blocks are laid out in groups of 16/32
using DI = hn::RebindToSigned<DF>;
using DU8 = hn::Rebind<uint8_t, DF>;

float dot_f32(const void* row, const float* x, int64_t n) {
  const hn::ScalableTag<float> d;
  const auto* w = static_cast<const float*>(row);
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  auto acc0 = hn::Zero(d), acc1 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    acc0 = hn::MulAdd(hn::LoadU(d, w + i), hn::LoadU(d, x + i), acc0);
    acc1 = hn::MulAdd(hn::LoadU(d, w + i + lanes), hn::LoadU(d, x + i + lanes), acc1);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
  for (; i < n; ++i) sum += w[i] * x[i];
  return sum;
}

// BF16 weights (widened exactly by a shift) times the F32 activation.
float dot_bf16(const void* row, const float* x, int64_t n) {
  const hn::ScalableTag<float> d;
  const hn::Rebind<hwy::bfloat16_t, decltype(d)> dh;
  const auto* w = static_cast<const uint16_t*>(row);
  const auto* wh = reinterpret_cast<const hwy::bfloat16_t*>(w);
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  auto acc0 = hn::Zero(d), acc1 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    acc0 = hn::MulAdd(hn::PromoteTo(d, hn::LoadU(dh, wh + i)), hn::LoadU(d, x + i), acc0);
    acc1 = hn::MulAdd(hn::PromoteTo(d, hn::LoadU(dh, wh + i + lanes)), hn::LoadU(d, x + i + lanes),
                      acc1);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
  for (; i < n; ++i) sum += bf16_to_float(w[i]) * x[i];
  return sum;
}

// F16 weights times an F16-rounded activation (llama.cpp's rule for F16 weights): both sides are
// widened in registers; the activation takes half the cache traffic of an F32 one.
float dot_f16_f16(const void* row, const uint16_t* x, int64_t n) {
  const hn::ScalableTag<float> d;
  const hn::Rebind<hwy::float16_t, decltype(d)> dh;
  const auto* w = static_cast<const hwy::float16_t*>(row);
  const auto* xh = reinterpret_cast<const hwy::float16_t*>(x);
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  auto acc0 = hn::Zero(d), acc1 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    acc0 = hn::MulAdd(hn::PromoteTo(d, hn::LoadU(dh, w + i)),
                      hn::PromoteTo(d, hn::LoadU(dh, xh + i)), acc0);
    acc1 = hn::MulAdd(hn::PromoteTo(d, hn::LoadU(dh, w + i + lanes)),
                      hn::PromoteTo(d, hn::LoadU(dh, xh + i + lanes)), acc1);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
  const auto* w16 = static_cast<const uint16_t*>(row);
  for (; i < n; ++i) sum += half_to_float(w16[i]) * half_to_float(x[i]);
  return sum;
}

// The 6-bit scale and min of Q4_K sub-block j (ggml's packing of 8 + 8 values in 12 bytes).
void q4_k_scale_min(const uint8_t* s, int j, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

float dot_q4_k(const void* row, const float* x, const float* x_sums32, int64_t n) {
  const DF d;
  const DU8 du8;
  const size_t lanes = hn::Lanes(d);
  const auto* blocks = static_cast<const gguf::BlockQ4_K*>(row);
  auto acc = hn::Zero(d);
  float min_total = 0.0f;  // sum over sub-blocks of dmin * min * sum(x)
  for (int64_t b = 0; b < n / gguf::kQK_K; ++b) {
    const gguf::BlockQ4_K& blk = blocks[b];
    const float scale_d = half_to_float(blk.d);
    const float scale_dmin = half_to_float(blk.dmin);
    const float* xb = x + b * gguf::kQK_K;
    for (int pair = 0; pair < 4; ++pair) {
      auto acc_lo = hn::Zero(d), acc_hi = hn::Zero(d);
      for (size_t k = 0; k < 32; k += lanes) {
        const auto bytes = hn::LoadU(du8, blk.qs + pair * 32 + k);
        const auto lo = hn::ConvertTo(d, hn::PromoteTo(DI(), hn::And(bytes, hn::Set(du8, 0x0F))));
        const auto hi = hn::ConvertTo(d, hn::PromoteTo(DI(), hn::ShiftRight<4>(bytes)));
        acc_lo = hn::MulAdd(lo, hn::LoadU(d, xb + pair * 64 + k), acc_lo);
        acc_hi = hn::MulAdd(hi, hn::LoadU(d, xb + pair * 64 + 32 + k), acc_hi);
      }
      int scale_lo, min_lo, scale_hi, min_hi;
      q4_k_scale_min(blk.scales, 2 * pair, &scale_lo, &min_lo);
      q4_k_scale_min(blk.scales, 2 * pair + 1, &scale_hi, &min_hi);
      acc = hn::MulAdd(acc_lo, hn::Set(d, scale_d * static_cast<float>(scale_lo)), acc);
      acc = hn::MulAdd(acc_hi, hn::Set(d, scale_d * static_cast<float>(scale_hi)), acc);
      const float* sums = x_sums32 + b * 8 + 2 * pair;
      min_total += scale_dmin *
                   (static_cast<float>(min_lo) * sums[0] + static_cast<float>(min_hi) * sums[1]);
    }
  }
  return hn::GetLane(hn::SumOfLanes(d, acc)) - min_total;
}

float dot_q6_k(const void* row, const float* x, int64_t n) {
  const DF d;
  const DI di;
  const DU8 du8;
  const size_t lanes = hn::Lanes(d);
  const auto* blocks = static_cast<const gguf::BlockQ6_K*>(row);
  const auto low4 = hn::Set(di, 0x0F), low2 = hn::Set(di, 3), bias = hn::Set(di, 32);
  auto acc0 = hn::Zero(d), acc1 = hn::Zero(d);
  for (int64_t b = 0; b < n / gguf::kQK_K; ++b) {
    const gguf::BlockQ6_K& blk = blocks[b];
    const float scale_d = half_to_float(blk.d);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = blk.ql + 64 * half;
      const uint8_t* qh = blk.qh + 32 * half;
      const int8_t* sc = blk.scales + 8 * half;
      const float* xh = x + b * gguf::kQK_K + 128 * half;
      for (size_t k = 0; k < 32; k += lanes) {
        const auto l0 = hn::PromoteTo(di, hn::LoadU(du8, ql + k));
        const auto l1 = hn::PromoteTo(di, hn::LoadU(du8, ql + 32 + k));
        const auto h = hn::PromoteTo(di, hn::LoadU(du8, qh + k));
        const auto q1 = hn::Or(hn::And(l0, low4), hn::ShiftLeft<4>(hn::And(h, low2)));
        const auto q2 =
            hn::Or(hn::And(l1, low4), hn::ShiftLeft<4>(hn::And(hn::ShiftRight<2>(h), low2)));
        const auto q3 =
            hn::Or(hn::ShiftRight<4>(l0), hn::ShiftLeft<4>(hn::And(hn::ShiftRight<4>(h), low2)));
        const auto q4 = hn::Or(hn::ShiftRight<4>(l1), hn::ShiftLeft<4>(hn::ShiftRight<6>(h)));
        const size_t group = k / 16;  // scale index within this 32-wide slice
        const float* xk = xh + k;
        const auto s1 = hn::Set(d, scale_d * sc[group]), s2 = hn::Set(d, scale_d * sc[group + 2]);
        const auto s3 = hn::Set(d, scale_d * sc[group + 4]),
                   s4 = hn::Set(d, scale_d * sc[group + 6]);
        acc0 = hn::MulAdd(hn::Mul(hn::ConvertTo(d, hn::Sub(q1, bias)), s1), hn::LoadU(d, xk), acc0);
        acc1 = hn::MulAdd(hn::Mul(hn::ConvertTo(d, hn::Sub(q2, bias)), s2), hn::LoadU(d, xk + 32),
                          acc1);
        acc0 = hn::MulAdd(hn::Mul(hn::ConvertTo(d, hn::Sub(q3, bias)), s3), hn::LoadU(d, xk + 64),
                          acc0);
        acc1 = hn::MulAdd(hn::Mul(hn::ConvertTo(d, hn::Sub(q4, bias)), s4), hn::LoadU(d, xk + 96),
                          acc1);
      }
    }
  }
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
}

// Sums of x over consecutive 32-element groups (Q4_K folds its mins into these).
std::vector<float> sums_of_32(const float* x, int64_t n) {
  std::vector<float> sums(static_cast<size_t>(n / 32));
  for (size_t g = 0; g < sums.size(); ++g) {
    float s = 0.0f;
    for (int64_t i = 0; i < 32; ++i) s += x[static_cast<int64_t>(g) * 32 + i];
    sums[g] = s;
  }
  return sums;
}

}  // namespace

bool batch_row_dot(std::span<const RowDot> dots, int64_t r, float* y, int64_t y_stride) {
  if (dots.empty() || dots.size() > static_cast<size_t>(kMaxQ8Batch) ||
      !uses_q8_activation(dots[0].w_.type)) {
    return false;
  }
  const Q8Activation* xs[kMaxQ8Batch];
  for (size_t t = 0; t < dots.size(); ++t) xs[t] = &dots[t].x_q8_;
  const RowDot& first = dots[0];
  dot_q8_activation_batch(first.w_.type, first.row(r), std::span(xs, dots.size()), first.w_.cols, y,
                          y_stride);
  return true;
}

RowDot::RowDot(const WeightMatrix& w, const float* x) : w_(w), x_(x) {
  if (!gguf::is_supported_type(w.type)) {
    fail("matvec: weight type {}: expected F32, F16, BF16, Q8_0, Q4_0, Q4_K or Q6_K",
         static_cast<uint32_t>(w.type));
  }
  row_bytes_ = gguf::row_bytes(w.type, w.cols);  // throws if cols is not a block multiple
  if (w.type == gguf::TensorType::kQ4_K) x_sums32_ = sums_of_32(x, w.cols);
  if (uses_q8_activation(w.type)) quantize_activation(x, w.cols, x_q8_);
  if (w.type == gguf::TensorType::kF16) round_to_f16(x, w.cols, x_f16_);
}

void RowDot::prefetch(int64_t r) const {
  if (r >= w_.rows) return;
  const auto* bytes = static_cast<const char*>(row(r));
  for (size_t b = 0; b < row_bytes_; b += 64) __builtin_prefetch(bytes + b);
}

const void* RowDot::row(int64_t r) const {
  return static_cast<const uint8_t*>(w_.data) + static_cast<size_t>(r) * row_bytes_;
}

float RowDot::operator()(int64_t r) const {
  const void* row = this->row(r);
  switch (w_.type) {
    case gguf::TensorType::kF32:
      return dot_f32(row, x_, w_.cols);
    case gguf::TensorType::kF16:
      return dot_f16_f16(row, x_f16_.data(), w_.cols);
    case gguf::TensorType::kBF16:
      return dot_bf16(row, x_, w_.cols);
    case gguf::TensorType::kQ8_0:
    case gguf::TensorType::kQ4_0:
      return dot_q8_activation(w_.type, row, x_q8_, w_.cols);
    case gguf::TensorType::kQ4_K:
      return dot_q4_k(row, x_, x_sums32_.data(), w_.cols);
    case gguf::TensorType::kQ6_K:
      return dot_q6_k(row, x_, w_.cols);
    default:
      return 0.0f;  // unreachable: rejected in the constructor
  }
}

namespace {

// y_i = W_i x for every projection in one parallel loop over the concatenated rows.
void matvec_projections(std::span<const Projection> projections, const float* x, int n_threads) {
  std::vector<RowDot> dots;
  std::vector<int64_t> first_row;  // of each projection in the concatenated row range
  int64_t total_rows = 0, total_weights = 0;
  for (const Projection& p : projections) {
    dots.emplace_back(p.w, x);
    first_row.push_back(total_rows);
    total_rows += p.w.rows;
    total_weights += p.w.rows * p.w.cols;
  }
  // Below ~64K weights a thread team costs more than it saves.
  const bool parallel = n_threads > 1 && total_weights >= (int64_t{1} << 16);
  // Dynamic chunks: a thread delayed by another process does not hold up the whole product.
  const int64_t chunk = std::max<int64_t>(16, total_rows / (16 * std::max(1, n_threads)));
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, chunk) if (parallel)
  for (int64_t g = 0; g < total_rows; ++g) {
    size_t i = 0;
    while (i + 1 < first_row.size() && g >= first_row[i + 1]) ++i;
    const int64_t r = g - first_row[i];
    dots[i].prefetch(r + kPrefetchRows);
    projections[i].y[r] = dots[i](r);
  }
}

}  // namespace

void matvec(const WeightMatrix& w, const float* x, float* y, int n_threads) {
  const Projection one{w, y};
  matvec_projections(std::span(&one, 1), x, n_threads);
}

void matmul_shared_input(std::span<const Projection> projections, const float* x, int64_t n_tokens,
                         int n_threads) {
  if (n_tokens == 1) {
    matvec_projections(projections, x, n_threads);
    return;
  }
  for (const Projection& p : projections) matmul(p.w, x, n_tokens, p.y, n_threads);
}

}  // namespace moa::kernels
