// Batched weight x activation products. A batch of tokens turns matvec's memory-bound stream
// into compute-bound GEMM. Block-quantized weights go to the int8 GEMM (kernels/gemm_int8.h)
// where the CPU has AVX-512 VNNI; otherwise each OpenMP thread dequantizes a panel of weight rows
// into a thread-local F32 tile (kept in L2/L3) and multiplies the whole batch with it through a
// single-threaded OpenBLAS sgemm, so OpenBLAS's own thread pool never competes with OpenMP.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "gguf/quant.h"
#include "kernels/gemm_half.h"
#include "kernels/gemm_int8.h"
#include "kernels/kernels.h"
#include "kernels/parallel.h"
#include "kernels/q8_activation.h"
#include "kernels/row_dot.h"

namespace moa::kernels {
namespace {

constexpr int64_t kPanelRows = 128;  // weight rows per dequantized tile
// Smaller batches (batch decode) stay on the stored format: dequantizing every weight to F32 for
// a handful of tokens costs more than the GEMM saves.
constexpr int64_t kMinGemmTokens = 8;

// Y[:, r0 .. r0+n_rows) = X * panel^T, with panel = n_rows weight rows in F32.
void gemm_panel(const float* panel, int64_t n_rows, const float* x, int64_t n_tokens, int64_t cols,
                float* y, int64_t y_stride) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(n_tokens),
              static_cast<blasint>(n_rows), static_cast<blasint>(cols), 1.0f, x,
              static_cast<blasint>(cols), panel, static_cast<blasint>(cols), 0.0f, y,
              static_cast<blasint>(y_stride));
}

// Each weight row is read from memory once and dotted with every token while it sits in L1, so
// a batch costs one pass over the weights (like a single matvec) plus n_tokens row dots.
void matmul_by_rows(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y,
                    int n_threads) {
  if (n_tokens == 1) {
    matvec(w, x, y, n_threads);
    return;
  }
  std::vector<RowDot> dots;
  dots.reserve(static_cast<size_t>(n_tokens));
  for (int64_t t = 0; t < n_tokens; ++t) dots.emplace_back(w, x + t * w.cols);
  const int threads =
      threads_for_work(n_threads, w.rows * w.cols * n_tokens, kMinMatvecWeightsPerThread);
  const bool parallel = threads > 1;
  const int64_t chunk = std::max<int64_t>(16, w.rows / (16 * threads));
#pragma omp parallel for num_threads(threads) schedule(dynamic, chunk) if (parallel)
  for (int64_t r = 0; r < w.rows; ++r) {
    if (batch_row_dot(dots, r, y + r, w.rows)) continue;
    for (int64_t t = 0; t < n_tokens; ++t) y[t * w.rows + r] = dots[static_cast<size_t>(t)](r);
  }
}

}  // namespace

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, int n_threads) {
  if (n_tokens < kMinGemmTokens) {
    matmul_by_rows(w, x, n_tokens, y, n_threads);
    return;
  }
  const RowDot validate(w, x);  // same type and shape checks as matvec
  (void)validate;
  if (uses_int8_gemm(w.type, n_tokens)) {
    gemm_int8(w, x, n_tokens, y, n_threads);
    return;
  }
  std::vector<float> rounded;  // the activations the row dots see (all but F32 weights)
  if (rounds_activation(w.type)) {
    rounded.assign(x, x + n_tokens * w.cols);
    round_activation_grid(w.type, rounded.data(), w.cols, n_tokens);
    x = rounded.data();
  }
  if (half_gemm_kind(w.type) != HalfGemm::kNone) {  // F16/BF16 on AVX-512: no F32 panels
    matmul_half(w, x, n_tokens, y, n_threads);
    return;
  }
  // OpenBLAS keeps a process-wide thread count; parallelism here comes from OpenMP panels.
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
  const size_t row_bytes = gguf::row_bytes(w.type, w.cols);
  const auto* bytes = static_cast<const uint8_t*>(w.data);
  const int64_t n_panels = (w.rows + kPanelRows - 1) / kPanelRows;
  // No more threads than panels, nor than the multiply-adds are worth.
  const int threads =
      std::min<int>(threads_for_work(n_threads, w.rows * w.cols * n_tokens, kMinGemmMacsPerThread),
                    static_cast<int>(std::min<int64_t>(n_panels, n_threads)));
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<float> panel;
#pragma omp for schedule(dynamic, 1)
    for (int64_t p = 0; p < n_panels; ++p) {
      const int64_t r0 = p * kPanelRows;
      const int64_t n_rows = std::min(kPanelRows, w.rows - r0);
      const float* tile = nullptr;
      if (w.type == gguf::TensorType::kF32) {
        tile = reinterpret_cast<const float*>(bytes + static_cast<size_t>(r0) * row_bytes);
      } else {
        panel.resize(static_cast<size_t>(n_rows * w.cols));
        for (int64_t r = 0; r < n_rows; ++r) {
          gguf::dequantize_row(w.type, bytes + static_cast<size_t>(r0 + r) * row_bytes,
                               panel.data() + r * w.cols, w.cols);
        }
        tile = panel.data();
      }
      gemm_panel(tile, n_rows, x, n_tokens, w.cols, y + r0, w.rows);
    }
  }
}

}  // namespace moa::kernels
