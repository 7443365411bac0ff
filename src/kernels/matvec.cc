// Matrix-vector product directly on GGUF storage formats. Each row is read in its stored format
// and multiplied in registers; nothing is dequantized to memory, so the kernel streams the
// weights once and stays memory-bandwidth bound. The activation is rounded where llama.cpp
// rounds it: to F16 for F16 weights, to BF16 for BF16 weights, to Q8_0 blocks for Q8_0, Q5_0 and
// Q4_0 weights, to Q8_K blocks for the K-quants (kernels/q8_activation.h); F32 weights keep it.
// Rows are split over OpenMP threads.
#include <algorithm>
#include <vector>

#include "gguf/quant.h"
#include "hwy/highway.h"
#include "kernels/gemm_int8.h"
#include "kernels/half.h"
#include "kernels/kernels.h"
#include "kernels/parallel.h"
#include "kernels/q8_activation.h"
#include "kernels/row_dot.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
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

// BF16 weights (widened exactly by a shift) times an activation already on the BF16 grid, so
// every product is exact as in ggml's bf16 x bf16 dot.
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
    fail("matvec: weight type {}: expected one of {}", static_cast<uint32_t>(w.type),
         gguf::supported_type_names());
  }
  row_bytes_ = gguf::row_bytes(w.type, w.cols);  // throws if cols is not a block multiple
  if (uses_q8_activation(w.type)) quantize_activation(x, w.cols, x_q8_);
  if (uses_q8_k_activation(w.type)) quantize_activation_q8_k(x, w.cols, x_q8_k_);
  if (uses_q4_k_order(w.type)) order_for_q4_k(x_q8_k_);
  if (w.type == gguf::TensorType::kF16) round_to_f16(x, w.cols, x_f16_);
  if (w.type == gguf::TensorType::kBF16) {
    x_bf16_.assign(x, x + w.cols);
    round_activation_grid(w.type, x_bf16_.data(), w.cols, 1);
  }
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
      return dot_bf16(row, x_bf16_.data(), w_.cols);
    case gguf::TensorType::kQ8_0:
    case gguf::TensorType::kQ5_0:
    case gguf::TensorType::kQ4_0:
      return dot_q8_activation(w_.type, row, x_q8_, w_.cols);
    case gguf::TensorType::kQ6_K:
    case gguf::TensorType::kQ5_K:
    case gguf::TensorType::kQ4_K:
      return dot_q8_k_activation(w_.type, row, x_q8_k_, w_.cols);
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
  const int threads = threads_for_work(n_threads, total_weights, kMinMatvecWeightsPerThread);
  const bool parallel = threads > 1;
  // Dynamic chunks: a thread delayed by another process does not hold up the whole product.
  const int64_t chunk = std::max<int64_t>(16, total_rows / (16 * std::max(1, n_threads)));
#pragma omp parallel for num_threads(threads) schedule(dynamic, chunk) if (parallel)
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
  matmul_projections(projections, x, n_tokens, n_threads);
}

}  // namespace moa::kernels
