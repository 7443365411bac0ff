// Prefill GEMM on quantized weights without dequantizing to F32 (issue 16 item 1): activations are
// rounded once per matmul to the weight's partner format (Q8_0 blocks for Q8_0/Q5_0/Q4_0, Q8_K
// blocks for Q4_K/Q5_K/Q6_K, exactly as matvec rounds them), weight rows are unpacked per panel
// into unsigned bytes interleaved 16 rows wide, and int8 micro-kernels (AVX-512 VNNI vpdpbusd:
// unsigned weight bytes times signed activation bytes) sum each block in integers before its float
// scales are applied. Internal to kernels/.
//
// Packed layout of one group of 16 weight rows (lane j = row j), per super-block of kSuperK values
// (32 for the *_0 types, 256 for the K-quants):
//   quants  kSuperK / 4 steps x 16 rows x 4 bytes: step k holds values 4k..4k+3 of every row as
//           unsigned bytes (Q8_0: w + 128, Q4_0: w + 8, Q5_0: w + 16, Q4_K/Q5_K: the code,
//           Q6_K: w + 32), so one 64-byte load feeds one vpdpbusd per token;
//   scales  kSubs x 16 floats: the float scale of each sub-block of kSubK values, per row;
//   mins    (Q4_K, Q5_K) 4 x 16 pairs of int16 (the 6-bit mins of sub-blocks 2p, 2p+1, per row)
//           and 16 floats dmin.
// The unsigned offsets are taken back through the activation side: each sub-block's integer sum
// starts at -offset * (sum of its activation bytes) instead of 0.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "gguf/types.h"
#include "kernels/kernels.h"
#include "kernels/q8_activation.h"

namespace moa::kernels {

inline constexpr int64_t kGemmLanes = 16;  // weight rows per packed group

// The block structure of one weight type in the packed layout.
struct Int8GemmFormat {
  int64_t super_k = 0;      // values per super-block (the activation scale's block)
  int64_t sub_k = 0;        // values per sub-block (one weight scale per row)
  int64_t subs = 0;         // sub-blocks per super-block
  bool mins = false;        // Q4_K / Q5_K: a per-sub-block min times the activation sum
  int32_t offset = 0;       // added to every signed weight to make it an unsigned byte
  int64_t group_bytes = 0;  // bytes of one super-block of one 16-row group
};

// Batches from this many tokens up take the int8 GEMM (matmul's GEMM threshold); smaller ones
// (batch decode) stay on row dots.
inline constexpr int64_t kMinInt8GemmTokens = 8;

// True for the weight types the int8 GEMM multiplies (Q8_0, Q5_0, Q4_0, Q4_K, Q5_K, Q6_K).
bool int8_gemm_supports(gguf::TensorType type);
// True when this build has the AVX-512 VNNI micro-kernels; otherwise gemm_int8 runs a portable
// integer loop (same sums, slower than OpenBLAS), so matmul only prefers it when this is true.
bool int8_gemm_is_vectorized();
Int8GemmFormat int8_gemm_format(gguf::TensorType type);
// True when matmul takes the int8 GEMM for this type and batch (vectorized builds only).
inline bool uses_int8_gemm(gguf::TensorType type, int64_t n_tokens) {
  return n_tokens >= kMinInt8GemmTokens && int8_gemm_is_vectorized() && int8_gemm_supports(type);
}

// Packs rows r0 .. r0 + 16 * n_groups - 1 of w (rows past w.rows become zeros) into `out`, group
// after group, each group n_super * group_bytes bytes.
void pack_int8_gemm_groups(const WeightMatrix& w, int64_t r0, int64_t n_groups, uint8_t* out);

// Tile sizes of the micro-kernels: tokens x 16-row groups held in registers. Formats without
// mins take 6 tokens (12 accumulators: 5% faster on Zen 5); Q4_K/Q5_K keep 4, as their mins
// pass needs registers of its own (6 tokens ran 4% slower there).
inline constexpr int kTileTokens = 6;
inline constexpr int kTileGroups = 2;
inline int tile_tokens(const Int8GemmFormat& f) { return f.mins ? 4 : kTileTokens; }

// One micro-kernel call: n_tokens (<= kTileTokens) tokens times n_groups (<= kTileGroups) packed
// groups over n_super super-blocks. Pointers start at the tile's first token, group, row and
// super-block; strides are in elements (bytes for w).
struct Int8Tile {
  const uint8_t* w = nullptr;
  int64_t group_stride = 0;   // bytes between consecutive groups
  const int8_t* x = nullptr;  // activation bytes
  int64_t x_stride = 0;
  const float* x_scales = nullptr;  // one per super-block
  int64_t x_scales_stride = 0;
  const int32_t* x_init = nullptr;  // one per sub-block: -offset * (sum of its activation bytes)
  int64_t x_init_stride = 0;
  const int32_t* x_min_sums = nullptr;  // Q4_K/Q5_K: per super-block 4 int16 pairs of 32-sums
  int64_t x_min_sums_stride = 0;
  int64_t n_super = 0;
  float* y = nullptr;
  int64_t y_stride = 0;
  int n_tokens = 0;
  int n_groups = 0;
  int64_t n_rows = 0;       // valid rows from the tile's first row (the rest are padding)
  bool accumulate = false;  // add to y (later K chunks) instead of overwriting it
};
// Runs the micro-kernel of format f: AVX-512 VNNI where built for it, else (or when `portable`)
// plain loops with the same integer sums.
void run_int8_tile(const Int8GemmFormat& f, const Int8Tile& tile, bool portable);

// A batch of activations rounded once for one partner format (Q8_0 blocks for the *_0 types, Q8_K
// blocks for the K-quants), shared by every matrix of that format that multiplies it.
struct Int8Batch {
  bool k_blocks = false;  // Q8_K rather than Q8_0 blocks
  int64_t n_tokens = 0;
  int64_t cols = 0;
  Q8Activation q8;    // tokens one after another, as one long row (with its block sums)
  Q8KActivation q8k;  // the same, natural order
};

// Rounds x ([n_tokens][cols]) as matvec rounds it for weights of `type`, tokens split over threads.
void round_int8_batch(gguf::TensorType type, const float* x, int64_t n_tokens, int64_t cols,
                      Int8Batch& out, int n_threads);

// Y[t] = W X[t] for the batch's tokens through the int8 path (y: [n_tokens][rows]); the batch
// must be rounded for w's partner format. Throws moa::Error for an unsupported type, a row length
// that is not a block multiple or a batch of another format or width. `portable` forces the
// plain-loop micro-kernel (tests run both on every CPU).
void gemm_int8(const WeightMatrix& w, const Int8Batch& batch, float* y, int n_threads,
               bool portable = false);
// The same from F32 activations x: [n_tokens][cols].
void gemm_int8(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, int n_threads,
               bool portable = false);

// matmul_shared_input's batch path: each projection through matmul, except that block-quantized
// ones (int8 GEMM) round the shared input once per partner format.
void matmul_projections(std::span<const Projection> projections, const float* x, int64_t n_tokens,
                        int n_threads);

}  // namespace moa::kernels
