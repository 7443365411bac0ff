// Prefill GEMM for F16 and BF16 weights with AVX-512, compiled for that target whatever -march
// says and chosen at run time. Each thread takes a panel of 128 weight rows and packs it, one
// K block at a time, into 32-row strips laid out step-major (for each k: 32 consecutive row
// values; a BF16 step is a pair of k), converting F16 to F32 on the way with a 16x16 transpose.
// A micro-kernel then holds 12 tokens x 32 rows of F32 sums in 24 registers: per step it loads
// two strip vectors and broadcasts one activation (F32, or a BF16 pair for vdpbf16ps) per
// token, so every load feeds 12 or 24 multiply-adds and no horizontal sum is ever needed.
// Products are exact in both formats (F16 x F16-rounded activation fits F32; vdpbf16ps
// multiplies BF16 pairs exactly), so results differ from sgemm only in summation order.
// With AMX-BF16 (Sapphire Rapids on), the strips are AMX B tiles as they stand and one
// TDPBF16PS multiplies 16 tokens by 16 rows over 32 values. BF16 weights: exact products, F32
// sums, as vdpbf16ps. F16 weights and their F16-rounded activations are split exactly into BF16
// high parts and remainders (11 = 8 + 3 significant bits) and high x high + high x low + low x
// high is summed: only low x low, under 2^-18 of each product, is left out (a fourth tile
// product would cost as much as the F32 FMAs).
#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "kernels/gemm_half.h"

namespace moa::kernels {

bool low_precision_kernels_enabled() {
  static const bool enabled = [] {
    const char* value = std::getenv("MOA_F32_KERNELS");
    return value == nullptr || std::strcmp(value, "1") != 0;
  }();
  return enabled;
}

#if defined(__x86_64__) && defined(__GNUC__)

namespace {

#define MOA_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,f16c,fma")))

constexpr int64_t kPanelRows = 128;   // weight rows per thread task: 4 strips
constexpr int64_t kStripRows = 32;    // rows per micro-kernel: two 16-lane vectors
constexpr int64_t kBlockSteps = 256;  // k steps per packed block: 4 strips x 32 KiB, in L2
constexpr int64_t kTokenTile = 12;    // tokens per micro-kernel: 24 accumulators

// What a packed step holds: an F32 value, a BF16 pair, or (from F16 weights) the pair's BF16
// high parts or their exact remainders.
enum class Format { kF32, kBf16Pairs, kBf16High, kBf16Low };

// GCC 12 flags the intrinsics' own "undefined" placeholder registers as uninitialised.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// In place: r[i] lane j becomes r[j] lane i, for 32-bit lanes (three rounds of shuffles).
MOA_AVX512_TARGET void transpose_16x16(__m512i* r) {
  __m512i t[16];
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 4; ++k) {
    r[4 * k] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
    r[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
    r[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
    r[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
  }
  for (int m = 0; m < 4; ++m) {
    const __m512i x0 = _mm512_shuffle_i32x4(r[m], r[4 + m], 0x44);
    const __m512i x1 = _mm512_shuffle_i32x4(r[m], r[4 + m], 0xEE);
    const __m512i y0 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0x44);
    const __m512i y1 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0xEE);
    t[0 + m] = _mm512_shuffle_i32x4(x0, y0, 0x88);
    t[4 + m] = _mm512_shuffle_i32x4(x0, y0, 0xDD);
    t[8 + m] = _mm512_shuffle_i32x4(x1, y1, 0x88);
    t[12 + m] = _mm512_shuffle_i32x4(x1, y1, 0xDD);
  }
  for (int k = 0; k < 16; ++k) r[k] = t[k];
}

// BF16 bits of 32 floats (lanes 0..15 from f0).
MOA_AVX512_TARGET __m512i to_bf16(__m512 f0, __m512 f1) {
  return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(f1, f0));
}

// The 16 floats that BF16 lanes 16 h .. 16 h + 15 of b stand for (BF16 is F32's top half).
MOA_AVX512_TARGET __m512 bf16_half_to_float(__m512i b, int h) {
  const __m256i half = h == 0 ? _mm512_castsi512_si256(b) : _mm512_extracti64x4_epi64(b, 1);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16));
}

// 32 values (f0: lanes 0..15) as BF16: their rounded high parts (kBf16High) or the remainders
// f - high (kBf16Low); both exact for values on the F16 grid (11 = 8 + 3 significant bits).
template <Format kFormat>
MOA_AVX512_TARGET __m512i bf16_part(__m512 f0, __m512 f1) {
  const __m512i high = to_bf16(f0, f1);
  if constexpr (kFormat == Format::kBf16High) return high;
  return to_bf16(_mm512_sub_ps(f0, bf16_half_to_float(high, 0)),
                 _mm512_sub_ps(f1, bf16_half_to_float(high, 1)));
}

// Packs rows [r0, r0 + n_rows) x steps [s0, s0 + n_steps) of the weights into strips:
// packed[(strip * n_steps + step) * 32 + row % 32]. Rows past n_rows pack as zeros, and so
// do the columns past `cols` (the odd half of a BF16 pair), so padding adds nothing.
template <Format kFormat>
MOA_AVX512_TARGET void pack_block(const uint16_t* w, int64_t cols, int64_t r0, int64_t n_rows,
                                  int64_t s0, int64_t n_steps, uint32_t* packed) {
  constexpr int64_t kColsPerStep = kFormat == Format::kF32 ? 1 : 2;
  const int64_t n_strips = (n_rows + kStripRows - 1) / kStripRows;
  for (int64_t row0 = 0; row0 < n_strips * kStripRows; row0 += 16) {
    uint32_t* strip = packed + (row0 / kStripRows) * n_steps * kStripRows + row0 % kStripRows;
    for (int64_t step = 0; step < n_steps; step += 16) {
      const int64_t c = (s0 + step) * kColsPerStep;
      const int64_t valid = std::clamp<int64_t>(cols - c, 0, 16 * kColsPerStep);
      __m512i r[16];
      for (int i = 0; i < 16; ++i) {
        if (row0 + i >= n_rows) {
          r[i] = _mm512_setzero_si512();
          continue;
        }
        const uint16_t* src = w + (r0 + row0 + i) * cols + c;
        if constexpr (kFormat == Format::kF32) {
          const __m256i h =
              _mm256_maskz_loadu_epi16(static_cast<__mmask16>((1u << valid) - 1), src);
          r[i] = _mm512_castps_si512(_mm512_cvtph_ps(h));
        } else {
          const auto mask = static_cast<__mmask32>(valid == 32 ? ~0u : (1u << valid) - 1);
          r[i] = _mm512_maskz_loadu_epi16(mask, src);
          if constexpr (kFormat != Format::kBf16Pairs) {  // F16 weights split for AMX
            r[i] = bf16_part<kFormat>(_mm512_cvtph_ps(_mm512_castsi512_si256(r[i])),
                                      _mm512_cvtph_ps(_mm512_extracti64x4_epi64(r[i], 1)));
          }
        }
      }
      transpose_16x16(r);
      const int64_t steps_here = std::min<int64_t>(16, n_steps - step);
      for (int64_t k = 0; k < steps_here; ++k)
        _mm512_storeu_si512(strip + (step + k) * kStripRows, r[k]);
    }
  }
}

// y[t][0..32) (+)= sum over steps of x[t][step] * strip[step][0..32) for kTokens tokens; lanes
// outside the masks (rows past the matrix) are neither read nor written.
template <Format kFormat, int kTokens>
MOA_AVX512_TARGET void micro_kernel(const uint32_t* strip, int64_t n_steps, const uint32_t* x,
                                    int64_t x_stride, float* y, int64_t y_stride, __mmask16 mask0,
                                    __mmask16 mask1, bool accumulate) {
  __m512 acc[kTokens][2];
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) {
    acc[t][0] = accumulate ? _mm512_maskz_loadu_ps(mask0, y + t * y_stride) : _mm512_setzero_ps();
    acc[t][1] =
        accumulate ? _mm512_maskz_loadu_ps(mask1, y + t * y_stride + 16) : _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < n_steps; ++k) {
    const __m512i w0 = _mm512_loadu_si512(strip + k * kStripRows);
    const __m512i w1 = _mm512_loadu_si512(strip + k * kStripRows + 16);
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) {
      const __m512i xv = _mm512_set1_epi32(static_cast<int>(x[t * x_stride + k]));
      if constexpr (kFormat == Format::kF32) {
        const __m512 xf = _mm512_castsi512_ps(xv);
        acc[t][0] = _mm512_fmadd_ps(xf, _mm512_castsi512_ps(w0), acc[t][0]);
        acc[t][1] = _mm512_fmadd_ps(xf, _mm512_castsi512_ps(w1), acc[t][1]);
      } else {
        acc[t][0] = _mm512_dpbf16_ps(acc[t][0], (__m512bh)xv, (__m512bh)w0);
        acc[t][1] = _mm512_dpbf16_ps(acc[t][1], (__m512bh)xv, (__m512bh)w1);
      }
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) {
    _mm512_mask_storeu_ps(y + t * y_stride, mask0, acc[t][0]);
    _mm512_mask_storeu_ps(y + t * y_stride + 16, mask1, acc[t][1]);
  }
}

#pragma GCC diagnostic pop

template <Format kFormat>
using MicroKernel = void (*)(const uint32_t*, int64_t, const uint32_t*, int64_t, float*, int64_t,
                             __mmask16, __mmask16, bool);

template <Format kFormat, int... kTokens>
constexpr auto micro_kernels(std::integer_sequence<int, kTokens...>) {
  return std::array<MicroKernel<kFormat>, sizeof...(kTokens)>{
      &micro_kernel<kFormat, kTokens + 1>...};
}

__mmask16 row_mask(int64_t valid) {
  return static_cast<__mmask16>(valid >= 16 ? 0xFFFF : valid <= 0 ? 0 : (1u << valid) - 1);
}

// Where a packed block lies: rows [r0, r0 + n_rows) in n_strips strips, steps [s0, s0 + steps);
// packed[f] holds it in the f-th format asked for.
struct PackedBlock {
  const uint32_t* packed[2] = {};
  int64_t r0 = 0, n_rows = 0, n_strips = 0, s0 = 0, steps = 0;
};

// Calls body(block) for every 128-row panel x K block of w over n_steps steps, panels spread over
// the threads, each block first packed into the thread's strips, once per format. A ThreadState
// lives in each thread from before its first panel to after its last (AMX's tile configuration).
template <class ThreadState, Format... kFormats, class Body>
void for_each_packed_block(const WeightMatrix& w, int64_t n_steps, int n_threads, Body body) {
  static_assert(sizeof...(kFormats) >= 1 && sizeof...(kFormats) <= 2);
  const int64_t n_panels = (w.rows + kPanelRows - 1) / kPanelRows;
  const auto* weights = static_cast<const uint16_t*>(w.data);
#pragma omp parallel num_threads(n_threads)
  {
    [[maybe_unused]] const ThreadState state;
    std::vector<uint32_t> packed[sizeof...(kFormats)];
    for (auto& buffer : packed) buffer.resize(static_cast<size_t>(kPanelRows * kBlockSteps));
#pragma omp for schedule(dynamic, 1)
    for (int64_t p = 0; p < n_panels; ++p) {
      PackedBlock block;
      block.r0 = p * kPanelRows;
      block.n_rows = std::min(kPanelRows, w.rows - block.r0);
      block.n_strips = (block.n_rows + kStripRows - 1) / kStripRows;
      for (block.s0 = 0; block.s0 < n_steps; block.s0 += kBlockSteps) {
        block.steps = std::min(kBlockSteps, n_steps - block.s0);
        size_t f = 0;
        ((pack_block<kFormats>(weights, w.cols, block.r0, block.n_rows, block.s0, block.steps,
                               packed[f].data()),
          block.packed[f] = packed[f].data(), ++f),
         ...);
        body(block);
      }
    }
  }
}

struct NoThreadState {};

// x as 32-bit steps: the F32 activations themselves, or BF16 pairs (the high halves of the
// BF16-rounded F32 values, odd column counts padded with a zero).
template <Format kFormat>
void run_gemm(const WeightMatrix& w, const uint32_t* x, int64_t x_stride, int64_t n_tokens,
              float* y, int n_threads) {
  static constexpr auto kernels =
      micro_kernels<kFormat>(std::make_integer_sequence<int, kTokenTile>());
  for_each_packed_block<NoThreadState, kFormat>(w, x_stride, n_threads, [&](const PackedBlock& b) {
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kTokenTile) {
      const int64_t tokens = std::min(kTokenTile, n_tokens - t0);
      const auto kernel = kernels[static_cast<size_t>(tokens - 1)];
      for (int64_t strip = 0; strip < b.n_strips; ++strip) {
        const int64_t row = b.r0 + strip * kStripRows;
        kernel(b.packed[0] + strip * b.steps * kStripRows, b.steps, x + t0 * x_stride + b.s0,
               x_stride, y + t0 * w.rows + row, w.rows, row_mask(w.rows - row),
               row_mask(w.rows - row - 16), b.s0 > 0);
      }
    }
  });
}

// High halves of BF16-rounded floats, two per 32-bit step.
MOA_AVX512_TARGET void bf16_pairs(const float* x, int64_t n_tokens, int64_t cols, int64_t stride,
                                  std::vector<uint32_t>& out) {
  out.assign(static_cast<size_t>(n_tokens * stride), 0u);
  auto* halves = reinterpret_cast<uint16_t*>(out.data());
  for (int64_t t = 0; t < n_tokens; ++t) {
    const auto* src = reinterpret_cast<const uint32_t*>(x + t * cols);
    uint16_t* dst = halves + t * 2 * stride;
    for (int64_t c = 0; c < cols; ++c) dst[c] = static_cast<uint16_t>(src[c] >> 16);
  }
}

// ---- AMX-BF16 ----

#define MOA_AMX_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,f16c,fma,amx-tile,amx-bf16")))

constexpr int64_t kAmxTokens = 16;  // tile rows
constexpr int64_t kAmxSteps = 16;   // BF16 pairs per tile row (64 bytes)

// ldtilecfg's 64-byte operand, palette 1.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// CPUID leaf 7 (AMX-BF16: EDX bit 22, AMX-TILE: bit 24), then Linux's permission for the 8 KiB
// tile state (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 18). MOA_NO_AMX=1 opts out.
constexpr long kArchRequestXcompPerm = 0x1023;
constexpr long kXfeatureTileData = 18;

bool amx_bf16_granted() {
  if (const char* off = std::getenv("MOA_NO_AMX"); off != nullptr && std::strcmp(off, "1") == 0)
    return false;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return false;
  if ((d & (1u << 22)) == 0 || (d & (1u << 24)) == 0) return false;
#if defined(__linux__)
  return syscall(SYS_arch_prctl, kArchRequestXcompPerm, kXfeatureTileData) == 0;
#else
  return false;
#endif
}

// Every tile 16 rows x 64 bytes. 0: activations (their high parts); 1, 2: the strip's two
// 16-row halves of weights (high parts); 3, 4: the halves' sums; F16 only: 5 the activations'
// remainders, 6, 7 the weights'.
MOA_AMX_TARGET void configure_tiles() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.rows[t] = kAmxTokens;
    config.colsb[t] = 64;
  }
  // GCC 12's _tile_loadconfig declares only 8 of the 64 bytes read, so the rows and colsb stores
  // above were dropped as dead (seen at -march=x86-64): hand ldtilecfg the whole struct.
  __asm__ volatile("ldtilecfg %0" : : "m"(config));
}

MOA_AMX_TARGET void release_tiles() { _tile_release(); }

// sums[h][t][0..16) += tokens t x rows 16 h .. 16 h + 15 of a strip over n_steps (a multiple of
// 16) BF16 pairs; x: the token block's A tiles from the first step on, the strip 32 pairs a step.
// kSplit (F16): high x high + high x low + low x high; low x low, under 2^-18 of each product,
// is left out.
template <bool kSplit>
MOA_AMX_TARGET void amx_strip(const uint32_t* strip, const uint32_t* strip_low, int64_t n_steps,
                              const uint32_t* x, const uint32_t* x_low,
                              float (*sums)[kAmxTokens][16]) {
  constexpr size_t kStripBytes = kStripRows * sizeof(uint32_t);
  // GCC 12's tileloadd does not declare that it reads memory: the sums, strips and activations
  // must be stored before it.
  __asm__ volatile("" : : : "memory");
  _tile_loadd(3, sums[0], 64);
  _tile_loadd(4, sums[1], 64);
  for (int64_t k = 0; k < n_steps; k += kAmxSteps) {
    _tile_loadd(0, x + k * kAmxTokens, 64);
    _tile_loadd(1, strip + k * kStripRows, kStripBytes);
    _tile_loadd(2, strip + k * kStripRows + 16, kStripBytes);
    _tile_dpbf16ps(3, 0, 1);
    _tile_dpbf16ps(4, 0, 2);
    if constexpr (kSplit) {
      _tile_loadd(5, x_low + k * kAmxTokens, 64);
      _tile_loadd(6, strip_low + k * kStripRows, kStripBytes);
      _tile_loadd(7, strip_low + k * kStripRows + 16, kStripBytes);
      _tile_dpbf16ps(3, 0, 6);
      _tile_dpbf16ps(4, 0, 7);
      _tile_dpbf16ps(3, 5, 1);
      _tile_dpbf16ps(4, 5, 2);
    }
  }
  _tile_stored(3, sums[0], 64);
  _tile_stored(4, sums[1], 64);
}

// Activations as BF16 pairs laid out tile by tile: per 16-token block, each run of 16 pairs is
// one 1 KiB A tile, so a tile load reads consecutive lines (token-major rows lie a whole row
// apart: often a page and an L1 set each). BF16 weights: the BF16-rounded activations; F16: their
// exact high parts and remainders. Zeros past the tokens and values.
struct AmxActivations {
  int64_t tiles_per_block = 0;  // 16 pairs each
  std::vector<uint32_t> high, low;
  // Where the A tile of token t's block and step s0 starts (s0 a multiple of 16).
  size_t offset(int64_t t, int64_t s0) const {
    return static_cast<size_t>((t / kAmxTokens * tiles_per_block + s0 / kAmxSteps) * kAmxTokens *
                               kAmxSteps);
  }
};

MOA_AVX512_TARGET AmxActivations amx_activations(const float* x, int64_t n_tokens, int64_t cols,
                                                 bool split) {
  AmxActivations a;
  a.tiles_per_block = ((cols + 1) / 2 + kAmxSteps - 1) / kAmxSteps;
  const int64_t blocks = (n_tokens + kAmxTokens - 1) / kAmxTokens;
  const auto size = static_cast<size_t>(blocks * a.tiles_per_block * kAmxTokens * kAmxSteps);
  a.high.assign(size, 0u);
  if (split) a.low.assign(size, 0u);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t c = 0; c < cols; c += 2 * kAmxSteps) {  // 32 values: one A tile row
      const int64_t valid = std::min<int64_t>(32, cols - c);
      const auto m0 = static_cast<__mmask16>(valid >= 16 ? 0xFFFF : (1u << valid) - 1);
      const auto m1 = static_cast<__mmask16>(valid <= 16 ? 0 : (1u << (valid - 16)) - 1);
      const __m512 f0 = _mm512_maskz_loadu_ps(m0, x + t * cols + c);
      const __m512 f1 = _mm512_maskz_loadu_ps(m1, x + t * cols + c + 16);
      const size_t at = a.offset(t, c / 2) + static_cast<size_t>(t % kAmxTokens * kAmxSteps);
      _mm512_storeu_si512(a.high.data() + at, bf16_part<Format::kBf16High>(f0, f1));
      if (split) _mm512_storeu_si512(a.low.data() + at, bf16_part<Format::kBf16Low>(f0, f1));
    }
  }
  return a;
}

// The sums of tokens [t0, t0 + tokens) x rows row.. of y into the 16-token buffer (zeros for the
// first K block and past the tokens), and back (masked to the rows and tokens).
MOA_AVX512_TARGET void load_sums(const float* y, int64_t y_stride, int64_t tokens,
                                 const __mmask16* masks, bool first_block,
                                 float (*sums)[kAmxTokens][16]) {
  for (int h = 0; h < 2; ++h) {
    for (int64_t t = 0; t < kAmxTokens; ++t) {
      _mm512_store_ps(sums[h][t], !first_block && t < tokens
                                      ? _mm512_maskz_loadu_ps(masks[h], y + t * y_stride + 16 * h)
                                      : _mm512_setzero_ps());
    }
  }
}

MOA_AVX512_TARGET void store_sums(float (*sums)[kAmxTokens][16], int64_t tokens,
                                  const __mmask16* masks, float* y, int64_t y_stride) {
  for (int h = 0; h < 2; ++h) {
    for (int64_t t = 0; t < tokens; ++t)
      _mm512_mask_storeu_ps(y + t * y_stride + 16 * h, masks[h], _mm512_load_ps(sums[h][t]));
  }
}

// A thread's AMX tiles: configured before its first panel, released after its last.
struct AmxTiles {
  AmxTiles() { configure_tiles(); }
  ~AmxTiles() { release_tiles(); }
  AmxTiles(const AmxTiles&) = delete;
  AmxTiles& operator=(const AmxTiles&) = delete;
};

// The AMX GEMM: panels and K blocks as run_gemm, each strip x 16-token tile one amx_strip call
// whose sums go through a small buffer (y is read back for later K blocks, written masked).
// kFormats: kBf16Pairs (BF16 weights), or kBf16High and kBf16Low (F16 weights, split).
template <Format... kFormats>
void run_gemm_amx(const WeightMatrix& w, const AmxActivations& x, int64_t n_tokens, float* y,
                  int n_threads) {
  constexpr bool kSplit = sizeof...(kFormats) == 2;
  for_each_packed_block<AmxTiles, kFormats...>(
      w, x.tiles_per_block * kAmxSteps, n_threads, [&](const PackedBlock& b) {
        alignas(64) float sums[2][kAmxTokens][16];
        for (int64_t t0 = 0; t0 < n_tokens; t0 += kAmxTokens) {
          const int64_t tokens = std::min(kAmxTokens, n_tokens - t0);
          const size_t x_at = x.offset(t0, b.s0);
          for (int64_t strip = 0; strip < b.n_strips; ++strip) {
            const int64_t row = b.r0 + strip * kStripRows;
            const __mmask16 masks[2] = {row_mask(w.rows - row), row_mask(w.rows - row - 16)};
            float* y_tile = y + t0 * w.rows + row;
            const int64_t at = strip * b.steps * kStripRows;
            load_sums(y_tile, w.rows, tokens, masks, b.s0 == 0, sums);
            amx_strip<kSplit>(b.packed[0] + at, kSplit ? b.packed[1] + at : nullptr, b.steps,
                              x.high.data() + x_at, kSplit ? x.low.data() + x_at : nullptr, sums);
            store_sums(sums, tokens, masks, y_tile, w.rows);
          }
        }
      });
}

bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("f16c") &&
                          __builtin_cpu_supports("fma");
  return has;
}

}  // namespace

HalfGemm half_gemm_kind(gguf::TensorType type) {
  if (!low_precision_kernels_enabled() || !cpu_has_avx512()) return HalfGemm::kNone;
  if (type == gguf::TensorType::kF16) return HalfGemm::kF16Fma;
  if (type == gguf::TensorType::kBF16 && __builtin_cpu_supports("avx512bf16"))
    return HalfGemm::kBf16Dot;
  return HalfGemm::kNone;
}

bool half_gemm_uses_amx() {
  static const bool granted = low_precision_kernels_enabled() && cpu_has_avx512() &&
                              __builtin_cpu_supports("avx512bf16") && amx_bf16_granted();
  return granted;
}

void matmul_half(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, int n_threads,
                 bool allow_amx) {
  if (allow_amx && half_gemm_uses_amx()) {
    if (w.type == gguf::TensorType::kBF16) {
      run_gemm_amx<Format::kBf16Pairs>(w, amx_activations(x, n_tokens, w.cols, false), n_tokens, y,
                                       n_threads);
    } else {
      run_gemm_amx<Format::kBf16High, Format::kBf16Low>(
          w, amx_activations(x, n_tokens, w.cols, true), n_tokens, y, n_threads);
    }
    return;
  }
  if (half_gemm_kind(w.type) == HalfGemm::kF16Fma) {
    run_gemm<Format::kF32>(w, reinterpret_cast<const uint32_t*>(x), w.cols, n_tokens, y, n_threads);
    return;
  }
  const int64_t pairs = (w.cols + 1) / 2;
  std::vector<uint32_t> packed_x;
  bf16_pairs(x, n_tokens, w.cols, pairs, packed_x);
  run_gemm<Format::kBf16Pairs>(w, packed_x.data(), pairs, n_tokens, y, n_threads);
}

#else  // not x86-64 GCC/Clang: always the sgemm path

HalfGemm half_gemm_kind(gguf::TensorType) { return HalfGemm::kNone; }
bool half_gemm_uses_amx() { return false; }
void matmul_half(const WeightMatrix&, const float*, int64_t, float*, int, bool) {}

#endif

}  // namespace moa::kernels
