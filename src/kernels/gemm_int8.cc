// Driver of the int8 prefill GEMM (kernels/gemm_int8.h). The activations are rounded once per
// call with matvec's own quantizers (quantize_activation / quantize_activation_q8_k over the whole
// batch), plus the per-sub-block sums that undo the unsigned weight offsets. OpenMP threads then
// take 32-row units: each unpacks its rows for the whole row length into a thread-local buffer
// (L2-resident), and walks it in chunks of 512 values (the chunk's weights stay in L1) across the
// batch, 4 tokens per micro-kernel call.
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

// The batch's activations as the micro-kernels read them (layouts in Int8Tile).
struct RoundedBatch {
  Q8Activation q8;    // *_0 weights
  Q8KActivation q8k;  // K-quant weights
  const int8_t* qs = nullptr;
  const float* scales = nullptr;
  std::vector<int32_t> init;
  std::vector<int32_t> min_sums;
};

int32_t pack_pair(int32_t lo, int32_t hi) {
  const uint32_t bits =
      static_cast<uint16_t>(static_cast<int16_t>(lo)) |
      (static_cast<uint32_t>(static_cast<uint16_t>(static_cast<int16_t>(hi))) << 16);
  return static_cast<int32_t>(bits);
}

void round_batch(const Int8GemmFormat& f, const float* x, int64_t n, RoundedBatch& out) {
  if (f.super_k == gguf::kQK8_0) {
    quantize_activation(x, n, out.q8);
    out.qs = out.q8.qs.data();
    out.scales = out.q8.scales.data();
    out.init.resize(static_cast<size_t>(n / f.super_k));
    for (size_t b = 0; b < out.init.size(); ++b) {
      int32_t sum = 0;
      for (int64_t i = 0; i < f.super_k; ++i)
        sum += out.qs[static_cast<int64_t>(b) * f.super_k + i];
      out.init[b] = -f.offset * sum;
    }
    return;
  }
  quantize_activation_q8_k(x, n, out.q8k);
  out.qs = out.q8k.qs.data();
  out.scales = out.q8k.scales.data();
  const std::vector<int16_t>& sums16 = out.q8k.sums16;  // one per 16 values
  if (!f.mins) {                                        // Q6_K: sub-blocks of 16, offset 32
    out.init.resize(sums16.size());
    for (size_t i = 0; i < sums16.size(); ++i) out.init[i] = -f.offset * sums16[i];
    return;
  }
  out.init.assign(static_cast<size_t>(n / f.sub_k), 0);
  out.min_sums.resize(static_cast<size_t>(n / 64));  // a pair of 32-value sums per 64 values
  for (size_t p = 0; p < out.min_sums.size(); ++p) {
    const int16_t* s = sums16.data() + 4 * p;
    out.min_sums[p] = pack_pair(s[0] + s[1], s[2] + s[3]);
  }
}

}  // namespace

void gemm_int8(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, int n_threads,
               bool portable) {
  const Int8GemmFormat f = int8_gemm_format(w.type);
  if (w.cols <= 0 || w.cols % f.super_k != 0) {
    fail("gemm_int8: row length {} of a {} matrix is not a multiple of {}", w.cols,
         gguf::tensor_type_name(static_cast<uint32_t>(w.type)), f.super_k);
  }
  if (n_tokens <= 0 || w.rows <= 0) return;
  RoundedBatch batch;
  round_batch(f, x, n_tokens * w.cols, batch);
  const int64_t n_super = w.cols / f.super_k;
  const int64_t group_stride = n_super * f.group_bytes;
  const int64_t chunk = std::max<int64_t>(1, kChunkValues / f.super_k);
  const int64_t n_units = (w.rows + kUnitRows - 1) / kUnitRows;
  const size_t buffer_bytes = static_cast<size_t>(kTileGroups * group_stride);
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
        for (int64_t t0 = 0; t0 < n_tokens; t0 += kTileTokens) {
          tile.w = buffer + c0 * f.group_bytes;
          tile.x = batch.qs + t0 * w.cols + c0 * f.super_k;
          tile.x_scales = batch.scales + t0 * n_super + c0;
          tile.x_init = batch.init.data() + t0 * tile.x_init_stride + c0 * f.subs;
          tile.x_min_sums =
              f.mins ? batch.min_sums.data() + t0 * tile.x_min_sums_stride + c0 * 4 : nullptr;
          tile.y = y + t0 * w.rows + r0;
          tile.n_tokens = static_cast<int>(std::min<int64_t>(kTileTokens, n_tokens - t0));
          run_int8_tile(f, tile, portable);
        }
      }
    }
  }
}

}  // namespace moa::kernels
