// Driver of the int8 prefill GEMM (kernels/gemm_int8.h). The activations are rounded once per
// batch with matvec's own quantizers (quantize_activation / quantize_activation_q8_k, token ranges
// split over the threads); each matrix then derives the per-sub-block sums that undo its unsigned
// weight offset. OpenMP threads then
// take 32-row units: each unpacks its rows for the whole row length into a thread-local buffer
// (L2-resident), and walks it in chunks of 512 values (the chunk's weights stay in L1) across the
// batch, 6 tokens per micro-kernel call (4 for Q4_K/Q5_K).
#include <algorithm>
#include <cstring>
#include <vector>

#include "gguf/quant.h"
#include "kernels/gemm_int8.h"
#include "kernels/q8_activation.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

// Values per K chunk: 32 rows x 512 packed bytes (16 KiB plus scales) stay in a 48 KiB L1.
constexpr int64_t kChunkValues = 512;
constexpr int64_t kUnitRows = kTileGroups * kGemmLanes;

// The sub-block sums of one format, from a batch (layouts in Int8Tile).
struct SubBlockSums {
  std::vector<int32_t> init;
  std::vector<int32_t> min_sums;
};

int32_t pack_pair(int32_t lo, int32_t hi) {
  const uint32_t bits =
      static_cast<uint16_t>(static_cast<int16_t>(lo)) |
      (static_cast<uint32_t>(static_cast<uint16_t>(static_cast<int16_t>(hi))) << 16);
  return static_cast<int32_t>(bits);
}

// -offset * (activation sum) per sub-block, and Q4_K/Q5_K's pairs of 32-value sums.
SubBlockSums sub_block_sums(const Int8GemmFormat& f, const Int8Batch& batch) {
  SubBlockSums out;
  if (!batch.k_blocks) {
    out.init.resize(batch.q8.scales.size());
    for (size_t b = 0; b < out.init.size(); ++b)
      out.init[b] = f.offset * batch.q8.negated_sums[8 * b];
    return out;
  }
  const std::vector<int16_t>& sums16 = batch.q8k.sums16;  // one per 16 values
  if (!f.mins) {                                          // Q6_K: sub-blocks of 16
    out.init.resize(sums16.size());
    for (size_t i = 0; i < sums16.size(); ++i) out.init[i] = -f.offset * sums16[i];
    return out;
  }
  out.init.assign(sums16.size() / 2, 0);
  out.min_sums.resize(sums16.size() / 4);  // a pair of 32-value sums per 64 values
  for (size_t p = 0; p < out.min_sums.size(); ++p) {
    const int16_t* s = sums16.data() + 4 * p;
    out.min_sums[p] = pack_pair(s[0] + s[1], s[2] + s[3]);
  }
  return out;
}

// Copies `part` (the rounding of tokens t0..) into `whole` at token t0.
template <class T>
void place(const std::vector<T>& part, int64_t per_token, int64_t t0, std::vector<T>& whole) {
  std::copy(part.begin(), part.end(), whole.begin() + t0 * per_token);
}

}  // namespace

void round_int8_batch(gguf::TensorType type, const float* x, int64_t n_tokens, int64_t cols,
                      Int8Batch& out, int n_threads) {
  const Int8GemmFormat f = int8_gemm_format(type);
  if (cols <= 0 || cols % f.super_k != 0) {
    fail("gemm_int8: row length {} of a {} matrix is not a multiple of {}", cols,
         gguf::tensor_type_name(static_cast<uint32_t>(type)), f.super_k);
  }
  out.k_blocks = f.super_k == gguf::kQK_K;
  out.n_tokens = n_tokens;
  out.cols = cols;
  const auto values = static_cast<size_t>(n_tokens * cols);
  const auto blocks = static_cast<size_t>(n_tokens * cols / f.super_k);
  if (out.k_blocks) {
    out.q8k.qs.resize(values);
    out.q8k.scales.resize(blocks);
    out.q8k.sums16.resize(values / 16);
    out.q8k.q4_k_order = false;
  } else {
    out.q8.qs.resize(values);
    out.q8.scales.resize(blocks);
    out.q8.negated_sums.resize(blocks * 8);
  }
  // Rounding is per block, so token ranges are independent.
  const int64_t per_thread =
      std::max<int64_t>(1, (n_tokens + n_threads - 1) / std::max(1, n_threads));
#pragma omp parallel num_threads(n_threads) if (n_threads > 1 && n_tokens >= 2 * n_threads)
  {
    Q8Activation q8;
    Q8KActivation q8k;
#pragma omp for schedule(static)
    for (int64_t t0 = 0; t0 < n_tokens; t0 += per_thread) {
      const int64_t n = std::min(per_thread, n_tokens - t0) * cols;
      if (out.k_blocks) {
        quantize_activation_q8_k(x + t0 * cols, n, q8k);
        place(q8k.qs, cols, t0, out.q8k.qs);
        place(q8k.scales, cols / f.super_k, t0, out.q8k.scales);
        place(q8k.sums16, cols / 16, t0, out.q8k.sums16);
      } else {
        quantize_activation(x + t0 * cols, n, q8);
        place(q8.qs, cols, t0, out.q8.qs);
        place(q8.scales, cols / f.super_k, t0, out.q8.scales);
        place(q8.negated_sums, cols / f.super_k * 8, t0, out.q8.negated_sums);
      }
    }
  }
}

void gemm_int8(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, int n_threads,
               bool portable) {
  Int8Batch batch;
  round_int8_batch(w.type, x, n_tokens, w.cols, batch, n_threads);
  gemm_int8(w, batch, y, n_threads, portable);
}

void gemm_int8(const WeightMatrix& w, const Int8Batch& batch, float* y, int n_threads,
               bool portable) {
  const Int8GemmFormat f = int8_gemm_format(w.type);
  if (batch.cols != w.cols || batch.k_blocks != (f.super_k == gguf::kQK_K)) {
    fail("gemm_int8: a batch of {}-value rows in {} blocks does not fit a {} matrix of {} columns",
         batch.cols, batch.k_blocks ? "Q8_K" : "Q8_0",
         gguf::tensor_type_name(static_cast<uint32_t>(w.type)), w.cols);
  }
  const int64_t n_tokens = batch.n_tokens;
  if (n_tokens <= 0 || w.rows <= 0) return;
  const SubBlockSums sums = sub_block_sums(f, batch);
  const int8_t* qs = batch.k_blocks ? batch.q8k.qs.data() : batch.q8.qs.data();
  const float* scales = batch.k_blocks ? batch.q8k.scales.data() : batch.q8.scales.data();
  const int64_t n_super = w.cols / f.super_k;
  const int64_t group_stride = n_super * f.group_bytes;
  const int64_t chunk = std::max<int64_t>(1, kChunkValues / f.super_k);
  const int64_t n_units = (w.rows + kUnitRows - 1) / kUnitRows;
  const size_t buffer_bytes = static_cast<size_t>(kTileGroups * group_stride);
  const int64_t tokens_per_tile = tile_tokens(f);
#pragma omp parallel num_threads(n_threads) if (n_threads > 1 && n_units > 1)
  {
    std::vector<uint8_t> storage(buffer_bytes + 64);
    uint8_t* const buffer =
        storage.data() + (64 - reinterpret_cast<uintptr_t>(storage.data()) % 64);
#pragma omp for schedule(dynamic, 1)
    for (int64_t unit = 0; unit < n_units; ++unit) {
      const int64_t r0 = unit * kUnitRows;
      const int64_t n_rows = std::min(kUnitRows, w.rows - r0);
      const int64_t n_groups = (n_rows + kGemmLanes - 1) / kGemmLanes;
      pack_int8_gemm_groups(w, r0, n_groups, buffer);
      Int8Tile tile;
      tile.group_stride = group_stride;
      tile.x_stride = w.cols;
      tile.x_scales_stride = n_super;
      tile.x_init_stride = n_super * f.subs;
      tile.x_min_sums_stride = n_super * 4;
      tile.y_stride = w.rows;
      tile.n_groups = static_cast<int>(n_groups);
      tile.n_rows = n_rows;
      for (int64_t c0 = 0; c0 < n_super; c0 += chunk) {
        tile.n_super = std::min(chunk, n_super - c0);
        tile.accumulate = c0 > 0;
        for (int64_t t0 = 0; t0 < n_tokens; t0 += tokens_per_tile) {
          tile.w = buffer + c0 * f.group_bytes;
          tile.x = qs + t0 * w.cols + c0 * f.super_k;
          tile.x_scales = scales + t0 * n_super + c0;
          tile.x_init = sums.init.data() + t0 * tile.x_init_stride + c0 * f.subs;
          tile.x_min_sums =
              f.mins ? sums.min_sums.data() + t0 * tile.x_min_sums_stride + c0 * 4 : nullptr;
          tile.y = y + t0 * w.rows + r0;
          tile.n_tokens = static_cast<int>(std::min<int64_t>(tokens_per_tile, n_tokens - t0));
          run_int8_tile(f, tile, portable);
        }
      }
    }
  }
}

void matmul_projections(std::span<const Projection> projections, const float* x, int64_t n_tokens,
                        int n_threads) {
  Int8Batch batches[2];  // Q8_0 blocks, Q8_K blocks; rounded on first use
  bool rounded[2] = {false, false};
  for (const Projection& p : projections) {
    if (!uses_int8_gemm(p.w.type, n_tokens)) {
      matmul(p.w, x, n_tokens, p.y, n_threads);
      continue;
    }
    const int k = uses_q8_k_activation(p.w.type) ? 1 : 0;
    if (!rounded[k] || batches[k].cols != p.w.cols) {
      round_int8_batch(p.w.type, x, n_tokens, p.w.cols, batches[k], n_threads);
      rounded[k] = true;
    }
    gemm_int8(p.w, batches[k], p.y, n_threads);
  }
}

}  // namespace moa::kernels
