// Matrix-vector product directly on GGUF storage formats. Each row is read in its stored format
// and multiplied in registers; nothing is dequantized to memory, so the kernel streams the
// weights once and stays memory-bandwidth bound. The activation is rounded where llama.cpp
// rounds it: to F16 for F16 weights, to BF16 for BF16 weights, to Q8_0 blocks for Q8_0, Q5_0 and
// Q4_0 weights, to Q8_K blocks for the K-quants (kernels/q8_activation.h); F32 weights keep it.
// Rows are split over OpenMP threads.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "gguf/quant.h"
#include "hwy/highway.h"
#include "kernels/gemm_int8.h"
#include "kernels/half.h"
#include "kernels/kernels.h"
#include "kernels/parallel.h"
#include "kernels/q8_activation.h"
#include "kernels/row_dot.h"
#include "kernels/stream_prefetch.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

// Weights of type T (F32, or BF16 / F16 widened exactly) as an F32 vector, and one as a float.
template <class T>
HWY_INLINE hn::Vec<DF> load_widened(const T* p) {
  if constexpr (std::is_same_v<T, float>) {
    return hn::LoadU(DF(), p);
  } else {
    return hn::PromoteTo(DF(), hn::LoadU(hn::Rebind<T, DF>(), p));
  }
}
template <class T>
float widened(const T* p) {
  uint16_t bits;
  if constexpr (std::is_same_v<T, float>) {
    return *p;
  } else {
    std::memcpy(&bits, p, sizeof(bits));
    return std::is_same_v<T, hwy::float16_t> ? half_to_float(bits) : bf16_to_float(bits);
  }
}

// F32, BF16 or F16 weights times an F32 activation, kRows rows read at once (separate memory
// streams). BF16 and F16 weights take an activation kept in F32 but already on their grid
// (llama.cpp rounds it so), so every product is exact as in ggml's bf16 x bf16 and f16 x f16
// dots, and an F32 activation costs no widening per row. Two accumulators per row.
template <class T, int kRows>
void dot_float_rows(const void* const* rows, const float* x, int64_t n, float* y) {
  const DF d;
  constexpr int64_t lanes = static_cast<int64_t>(hn::MaxLanes(d));
  const T* w[kRows];
  hn::Vec<DF> acc0[kRows], acc1[kRows];
  for (int r = 0; r < kRows; ++r) {
    w[r] = static_cast<const T*>(rows[r]);
    acc0[r] = acc1[r] = hn::Zero(d);
  }
  int64_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    const auto x0 = hn::LoadU(d, x + i), x1 = hn::LoadU(d, x + i + lanes);
    for (int r = 0; r < kRows; ++r) {
      prefetch_stream_ahead<2 * lanes * sizeof(T)>(w[r] + i);
      acc0[r] = hn::MulAdd(load_widened(w[r] + i), x0, acc0[r]);
      acc1[r] = hn::MulAdd(load_widened(w[r] + i + lanes), x1, acc1[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0[r], acc1[r])));
    for (int64_t j = i; j < n; ++j) sum += widened(w[r] + j) * x[j];
    y[r] = sum;
  }
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
  if (w.type == gguf::TensorType::kF16 || w.type == gguf::TensorType::kBF16) {
    x_half_grid_.assign(x, x + w.cols);
    round_activation_grid(w.type, x_half_grid_.data(), w.cols, 1);
  }
}

const void* RowDot::row(int64_t r) const {
  return static_cast<const uint8_t*>(w_.data) + static_cast<size_t>(r) * row_bytes_;
}

float RowDot::operator()(int64_t r) const {
  float y = 0.0f;
  dot_rows(std::span(&r, 1), &y);
  return y;
}

void RowDot::dot_rows(std::span<const int64_t> rs, float* y) const {
  if (rs.empty() || rs.size() > kRowStreams) fail("RowDot: {} rows at once", rs.size());
  const void* rows[kRowStreams];
  for (size_t i = 0; i < rs.size(); ++i) rows[i] = row(rs[i]);
  const std::span<const void* const> stored(rows, rs.size());
  switch (w_.type) {
    case gguf::TensorType::kQ8_0:
    case gguf::TensorType::kQ5_0:
    case gguf::TensorType::kQ4_0:
      return dot_q8_activation_rows(w_.type, stored, x_q8_, w_.cols, y);
    case gguf::TensorType::kQ6_K:
    case gguf::TensorType::kQ5_K:
    case gguf::TensorType::kQ4_K:
      return dot_q8_k_activation_rows(w_.type, stored, x_q8_k_, w_.cols, y);
    default:
      break;
  }
  with_row_count(rs.size(), [&]<int kRows>() {
    if (w_.type == gguf::TensorType::kF16) {
      dot_float_rows<hwy::float16_t, kRows>(rows, x_half_grid_.data(), w_.cols, y);
    } else if (w_.type == gguf::TensorType::kBF16) {
      dot_float_rows<hwy::bfloat16_t, kRows>(rows, x_half_grid_.data(), w_.cols, y);
    } else {  // F32: the constructor rejected every other type
      dot_float_rows<float, kRows>(rows, x_, w_.cols, y);
    }
  });
}

namespace {

// y_i = W_i x for every projection in one parallel loop. The unit of work is a row stream
// group: unit u of a matrix of R rows is rows u, u + s, u + 2 s, u + 3 s (those < R) with
// s = ceil(R / kRowStreams), read in one row dot, so each thread streams its rows from
// kRowStreams places in memory at once (kernels/stream_prefetch.h); consecutive units move
// every stream on by one row.
void matvec_projections(std::span<const Projection> projections, const float* x, int n_threads) {
  std::vector<RowDot> dots;
  std::vector<int64_t> first_unit, stride;  // per projection: its first unit, rows between streams
  int64_t total_units = 0, total_weights = 0;
  for (const Projection& p : projections) {
    dots.emplace_back(p.w, x);
    first_unit.push_back(total_units);
    stride.push_back((p.w.rows + static_cast<int64_t>(kRowStreams) - 1) /
                     static_cast<int64_t>(kRowStreams));
    total_units += stride.back();
    total_weights += p.w.rows * p.w.cols;
  }
  const int threads = threads_for_work(n_threads, total_weights, kMinMatvecWeightsPerThread);
  const bool parallel = threads > 1;
  // Dynamic chunks: a thread delayed by another process does not hold up the whole product.
  const int64_t chunk = std::max<int64_t>(4, total_units / (16 * std::max(1, n_threads)));
#pragma omp parallel for num_threads(threads) schedule(dynamic, chunk) if (parallel)
  for (int64_t g = 0; g < total_units; ++g) {
    size_t i = 0;
    while (i + 1 < first_unit.size() && g >= first_unit[i + 1]) ++i;
    const int64_t u = g - first_unit[i], rows = projections[i].w.rows;
    int64_t group[kRowStreams];
    size_t count = 0;
    for (int64_t r = u; r < rows && count < kRowStreams; r += stride[i]) group[count++] = r;
    float y[kRowStreams];
    dots[i].dot_rows(std::span(group, count), y);
    for (size_t k = 0; k < count; ++k) projections[i].y[group[k]] = y[k];
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
