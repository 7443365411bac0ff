// Activation gradients of the row-wise kernels and of the weight products. The row-wise ones are
// cheap next to the products, so they are single-threaded loops without reductions (which the
// compiler vectorises) around OpenBLAS dot products; SiLU's exp goes through Highway as in the
// forward. The transposed product runs like kernels::matmul, but over column panels of W: a
// block-aligned slice of every weight row dequantizes on its own, so each task owns a disjoint
// slice of dx and no reduction between threads is needed. transpose_to_q8_0 instead lets the
// forward's int8 GEMM do the transposed product.
#include "kernels/backward.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "gguf/quant.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "kernels/gemm_int8.h"
#include "kernels/parallel.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

constexpr int64_t kPanelCols = 256;   // columns of W per task (a multiple of every block size)
constexpr int64_t kPanelRows = 256;   // rows of W dequantized per sgemm
constexpr int64_t kTokenBlock = 512;  // tokens per task, so short weights still split over threads

// One task: dx[t0..t0+nt)[c0..c0+nc) = dy[t0..t0+nt) * W[:, c0..c0+nc).
struct PanelTask {
  int64_t t0, nt, c0, nc;
};

void transposed_panel(const WeightMatrix& w, const float* dy, float* dx, const PanelTask& task,
                      std::vector<float>& panel) {
  const size_t row_bytes = gguf::row_bytes(w.type, w.cols);
  const int64_t block = gguf::type_block_elements(w.type);
  const size_t col_offset = static_cast<size_t>(task.c0 / block) * gguf::type_block_bytes(w.type);
  const auto* bytes = static_cast<const uint8_t*>(w.data);
  for (int64_t r0 = 0; r0 < w.rows; r0 += kPanelRows) {
    const int64_t nr = std::min(kPanelRows, w.rows - r0);
    const float* b = nullptr;
    int64_t ldb = task.nc;
    if (w.type == gguf::TensorType::kF32) {
      b = static_cast<const float*>(w.data) + r0 * w.cols + task.c0;
      ldb = w.cols;
    } else {
      panel.resize(static_cast<size_t>(nr * task.nc));
      for (int64_t r = 0; r < nr; ++r) {
        gguf::dequantize_row(w.type, bytes + static_cast<size_t>(r0 + r) * row_bytes + col_offset,
                             panel.data() + r * task.nc, task.nc);
      }
      b = panel.data();
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(task.nt),
                static_cast<blasint>(task.nc), static_cast<blasint>(nr), 1.0f,
                dy + task.t0 * w.rows + r0, static_cast<blasint>(w.rows), b,
                static_cast<blasint>(ldb), r0 == 0 ? 0.0f : 1.0f, dx + task.t0 * w.cols + task.c0,
                static_cast<blasint>(w.cols));
  }
}

}  // namespace

void rms_norm_backward(const float* x, const float* weight, const float* dy, int64_t n,
                       int64_t n_tokens, float eps, float* dx) {
  const auto bn = static_cast<blasint>(n);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xt = x + t * n;
    const float* dyt = dy + t * n;
    float* dxt = dx + t * n;
    const float inv = 1.0f / std::sqrt(cblas_sdot(bn, xt, 1, xt, 1) / static_cast<float>(n) + eps);
    for (int64_t i = 0; i < n; ++i) dxt[i] = dyt[i] * weight[i];
    const float c = cblas_sdot(bn, dxt, 1, xt, 1) * inv * inv * inv / static_cast<float>(n);
    for (int64_t i = 0; i < n; ++i) dxt[i] = inv * dxt[i] - c * xt[i];
  }
}

void swiglu_backward(const float* gate, const float* up, const float* d_hidden, int64_t n,
                     float* d_gate, float* d_up) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto one = hn::Set(d, 1.0f);
  const auto exp_limit = hn::Set(d, 88.0f);  // as in swiglu: sigmoid(g < -88) is ~0 anyway
  int64_t i = 0;
  // silu'(g) = s * (1 + g * (1 - s)) with s = sigmoid(g).
  for (; i + lanes <= n; i += lanes) {
    const auto g = hn::LoadU(d, gate + i), dh = hn::LoadU(d, d_hidden + i);
    const auto s = hn::Div(one, hn::Add(one, hn::CallExp(d, hn::Min(hn::Neg(g), exp_limit))));
    hn::StoreU(hn::Mul(dh, hn::Mul(g, s)), d, d_up + i);
    const auto slope = hn::Mul(s, hn::MulAdd(g, hn::Sub(one, s), one));
    hn::StoreU(hn::Mul(hn::Mul(dh, hn::LoadU(d, up + i)), slope), d, d_gate + i);
  }
  for (; i < n; ++i) {
    const float g = gate[i];
    const float s = 1.0f / (1.0f + std::exp(std::min(-g, 88.0f)));
    d_up[i] = d_hidden[i] * g * s;
    d_gate[i] = d_hidden[i] * up[i] * s * (1.0f + g * (1.0f - s));
  }
}

void rope_backward(float* dx, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                   const int32_t* positions, const RopeParams& params) {
  // The transpose of a rotation by theta is the rotation by -theta, and kernels::rope's angle is
  // linear in the position (cos and sin of -theta are exact mirrors), so negated positions
  // undo the forward exactly.
  std::vector<int32_t> negated(positions, positions + n_tokens);
  for (int32_t& p : negated) {
    if (p < -INT32_MAX) fail("rope_backward: position {} cannot be negated", p);
    p = -p;
  }
  rope(dx, n_tokens, n_heads, head_dim, negated.data(), params);
}

void matmul_transposed(const WeightMatrix& w, const float* dy, int64_t n_tokens, float* dx,
                       int n_threads) {
  if (w.rows <= 0 || w.cols <= 0 || w.data == nullptr) {
    fail("matmul_transposed: weight {}x{}: expected a non-empty matrix", w.rows, w.cols);
  }
  if (!gguf::is_supported_type(w.type)) {
    fail("matmul_transposed: tensor type {} is not supported", static_cast<uint32_t>(w.type));
  }
  const int64_t block = gguf::type_block_elements(w.type);
  (void)gguf::row_bytes(w.type, w.cols);  // throws unless cols is a whole number of blocks
  if (n_tokens <= 0) return;
  const int64_t panel_cols = (kPanelCols + block - 1) / block * block;
  std::vector<PanelTask> tasks;
  for (int64_t t0 = 0; t0 < n_tokens; t0 += kTokenBlock) {
    for (int64_t c0 = 0; c0 < w.cols; c0 += panel_cols) {
      tasks.push_back(
          {t0, std::min(kTokenBlock, n_tokens - t0), c0, std::min(panel_cols, w.cols - c0)});
    }
  }
  // OpenBLAS keeps a process-wide thread count; parallelism here comes from OpenMP tasks.
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
  const auto n_tasks = static_cast<int64_t>(tasks.size());
#pragma omp parallel num_threads(std::max(1, n_threads))
  {
    std::vector<float> panel;
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < n_tasks; ++i) {
      transposed_panel(w, dy, dx, tasks[static_cast<size_t>(i)], panel);
    }
  }
}

bool transpose_to_q8_0_pays(const WeightMatrix& w) {
  return int8_gemm_supports(w.type) && int8_gemm_is_vectorized() &&
         w.rows % gguf::type_block_elements(gguf::TensorType::kQ8_0) == 0;
}

TransposedWeight transpose_to_q8_0(const WeightMatrix& w, int n_threads) {
  constexpr gguf::TensorType kQ8 = gguf::TensorType::kQ8_0;
  const int64_t block = gguf::type_block_elements(kQ8);
  if (w.rows <= 0 || w.cols <= 0 || w.data == nullptr || w.rows % block != 0) {
    fail("transpose_to_q8_0: weight {}x{}: expected a non-empty matrix with rows a multiple of {}",
         w.rows, w.cols, block);
  }
  const size_t in_row = gguf::row_bytes(w.type, w.cols), out_row = gguf::row_bytes(kQ8, w.rows);
  const size_t block_bytes = gguf::type_block_bytes(kQ8);
  TransposedWeight t;
  t.bytes.resize(out_row * static_cast<size_t>(w.cols));
  t.w = {kQ8, t.bytes.data(), w.cols, w.rows};
  const auto* src = static_cast<const uint8_t*>(w.data);
  const int64_t n_blocks = w.rows / block;
  // Each task dequantizes 32 rows of W (one block of every output row) and writes that block.
  const int threads = threads_for_work(n_threads, w.rows * w.cols, kMinGemmMacsPerThread);
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> rows(static_cast<size_t>(block * w.cols)),
        column(static_cast<size_t>(block));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < n_blocks; ++b) {
      for (int64_t r = 0; r < block; ++r) {
        gguf::dequantize_row(w.type, src + static_cast<size_t>(b * block + r) * in_row,
                             rows.data() + r * w.cols, w.cols);
      }
      for (int64_t c = 0; c < w.cols; ++c) {
        for (int64_t r = 0; r < block; ++r) column[static_cast<size_t>(r)] = rows[r * w.cols + c];
        gguf::quantize_row(kQ8, column.data(),
                           t.bytes.data() + static_cast<size_t>(c) * out_row +
                               static_cast<size_t>(b) * block_bytes,
                           block);
      }
    }
  }
  return t;
}

}  // namespace moa::kernels
