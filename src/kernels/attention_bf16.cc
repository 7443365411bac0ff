// BF16 products for the rows-in-lanes (decode-shaped) attention tiles over an F16 cache, with
// vdpbf16ps (AVX512-BF16: Zen 4, Sapphire Rapids), compiled for that target whatever -march says
// and chosen at run time. One vdpbf16ps multiplies a pair of BF16 values per F32 lane and adds
// both products exactly, so Q·K takes half the instructions of the F32 lanes path: scaled
// queries are stored as BF16 pairs along head_dim (lane = row), keys as BF16 rows whose pairs
// are broadcast. P·V pairs along keys instead: the probabilities of two keys form one BF16
// pair per row, and each 16-value slice of two value rows is interleaved into pairs once and
// shared by every row. Sums stay F32; only the inputs are rounded to BF16 (8-bit significand),
// which costs accuracy the F16 cache has already given up in part (docs/dense-engine.md).
#include <cstdlib>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels/attention_tile.h"

namespace moa::kernels {

#if defined(__x86_64__) && defined(__GNUC__)

namespace {

#define MOA_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,f16c,fma")))

// GCC 12 flags the intrinsics' own "undefined" placeholder registers as uninitialised.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// F32 -> BF16 bits, round to nearest even (finite inputs).
uint32_t bf16_bits(float f) {
  uint32_t u = 0;
  __builtin_memcpy(&u, &f, sizeof u);
  return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}

constexpr int64_t kKeysPerPass = 8;  // score accumulators held in registers

template <int kWidth>
MOA_BF16_TARGET void scores_bf16(const uint32_t* q_pairs, int64_t head_dim, const uint16_t* k,
                                 float* s) {
  const int64_t n_pairs = head_dim / 2;
  const auto* k_pairs = reinterpret_cast<const uint32_t*>(k);
  for (int64_t j0 = 0; j0 < kKeyTile; j0 += kKeysPerPass) {
    const uint32_t* kj = k_pairs + j0 * n_pairs;
    if constexpr (kWidth == 16) {
      __m512 acc[kKeysPerPass];
      for (auto& a : acc) a = _mm512_setzero_ps();
      for (int64_t i = 0; i < n_pairs; ++i) {
        const auto q = (__m512bh)_mm512_loadu_si512(q_pairs + i * kWidth);
#pragma GCC unroll 8
        for (int64_t j = 0; j < kKeysPerPass; ++j) {
          const auto key = (__m512bh)_mm512_set1_epi32(static_cast<int>(kj[j * n_pairs + i]));
          acc[j] = _mm512_dpbf16_ps(acc[j], key, q);
        }
      }
      for (int64_t j = 0; j < kKeysPerPass; ++j) _mm512_storeu_ps(s + (j0 + j) * kWidth, acc[j]);
    } else {
      __m256 acc[kKeysPerPass];
      for (auto& a : acc) a = _mm256_setzero_ps();
      for (int64_t i = 0; i < n_pairs; ++i) {
        const auto q =
            (__m256bh)_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q_pairs + i * kWidth));
#pragma GCC unroll 8
        for (int64_t j = 0; j < kKeysPerPass; ++j) {
          const auto key = (__m256bh)_mm256_set1_epi32(static_cast<int>(kj[j * n_pairs + i]));
          acc[j] = _mm256_dpbf16_ps(acc[j], key, q);
        }
      }
      for (int64_t j = 0; j < kKeysPerPass; ++j) _mm256_storeu_ps(s + (j0 + j) * kWidth, acc[j]);
    }
  }
}

// 16 values of rows a and b as 16 BF16 pairs (a_i, b_i).
MOA_BF16_TARGET __m512bh interleave_pairs(__m512 a, __m512 b) {
  const __m512i halves = (__m512i)_mm512_cvtne2ps_pbh(b, a);  // a0..a15, b0..b15
  const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                         8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return (__m512bh)_mm512_permutexvar_epi16(order, halves);
}

// p_pairs[m][r] = (p[2m][r], p[2m + 1][r]) in BF16 for the kKeyTile probabilities of a tile
// (s laid out [key][width]); for width 8 two keys' rows are one 16-float vector.
MOA_BF16_TARGET void probability_pairs(const float* s, int64_t width, uint32_t* p_pairs) {
  const __m256i order8 = _mm256_set_epi16(15, 7, 14, 6, 13, 5, 12, 4, 11, 3, 10, 2, 9, 1, 8, 0);
  for (int64_t j = 0; j < kKeyTile; j += 2) {
    const float* a = s + j * width;
    if (width == 16) {
      _mm512_storeu_si512(p_pairs + j * 8,
                          (__m512i)interleave_pairs(_mm512_loadu_ps(a), _mm512_loadu_ps(a + 16)));
    } else {
      const __m256i halves = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(a));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p_pairs + j * 4),
                          _mm256_permutexvar_epi16(order8, halves));
    }
  }
}

MOA_BF16_TARGET __m512 load_f16(const uint16_t* src) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src)));
}

// o[r][c .. c + 16 kVectors) = o[r] * correction[r] + sum_j p[j][r] v[j], rows r0 .. r0 +
// kRows, key pairs (2m, 2m + 1) at a time; a missing odd key pairs with zeros.
template <int64_t kRows, int kVectors>
MOA_BF16_TARGET void values_slice(const LaneTile& tile, const uint32_t* p_pairs, int64_t width,
                                  const float* correction, int64_t r0, int64_t c, float* o,
                                  int64_t o_stride) {
  __m512 acc[kRows][kVectors];
  for (int64_t r = 0; r < kRows; ++r) {
    const __m512 scale = _mm512_set1_ps(correction[r0 + r]);
    for (int v = 0; v < kVectors; ++v)
      acc[r][v] = _mm512_mul_ps(_mm512_loadu_ps(o + (r0 + r) * o_stride + c + 16 * v), scale);
  }
  const auto* values = static_cast<const uint16_t*>(tile.v);
  for (int64_t j = 0; j < tile.n_keys; j += 2) {
    __m512bh pairs[kVectors];
    const uint16_t* row = values + j * tile.head_dim + c;
    for (int v = 0; v < kVectors; ++v) {
      const __m512 second =
          j + 1 < tile.n_keys ? load_f16(row + tile.head_dim + 16 * v) : _mm512_setzero_ps();
      pairs[v] = interleave_pairs(load_f16(row + 16 * v), second);
    }
    const uint32_t* pj = p_pairs + (j / 2) * width + r0;
    for (int64_t r = 0; r < kRows; ++r) {
      const auto weight = (__m512bh)_mm512_set1_epi32(static_cast<int>(pj[r]));
      for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], weight, pairs[v]);
    }
  }
  for (int64_t r = 0; r < kRows; ++r) {
    for (int v = 0; v < kVectors; ++v)
      _mm512_storeu_ps(o + (r0 + r) * o_stride + c + 16 * v, acc[r][v]);
  }
}

template <int64_t kRows, int kVectors>
MOA_BF16_TARGET void values_rows(const LaneTile& tile, const uint32_t* p_pairs, int64_t width,
                                 const float* correction, int64_t r0, float* o, int64_t o_stride) {
  int64_t c = 0;
  for (; c + 16 * kVectors <= tile.head_dim; c += 16 * kVectors)
    values_slice<kRows, kVectors>(tile, p_pairs, width, correction, r0, c, o, o_stride);
  for (; c < tile.head_dim; c += 16)
    values_slice<kRows, 1>(tile, p_pairs, width, correction, r0, c, o, o_stride);
}

bool cpu_has_avx512_bf16() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("f16c");
  return has;
}

}  // namespace

bool bf16_attention_available() {
  // The lane tiles that call these kernels exist only in AVX-512 builds (attention_tile.cc).
#if defined(__AVX512F__)
  constexpr bool kLaneTilesBuilt = true;
#else
  constexpr bool kLaneTilesBuilt = false;
#endif
  return kLaneTilesBuilt && cpu_has_avx512_bf16();
}

void bf16_query_pairs(const float* q_lanes, int64_t head_dim, int64_t width, uint32_t* out) {
  for (int64_t i = 0; i < head_dim; i += 2) {
    for (int64_t r = 0; r < width; ++r) {
      out[(i / 2) * width + r] =
          bf16_bits(q_lanes[i * width + r]) | bf16_bits(q_lanes[(i + 1) * width + r]) << 16;
    }
  }
}

namespace {

MOA_BF16_TARGET void f16_row_to_bf16(const uint16_t* f16_row, int64_t head_dim, uint16_t* dst) {
  for (int64_t i = 0; i < head_dim; i += 16) {
    const __m256i narrow = (__m256i)_mm512_cvtneps_pbh(load_f16(f16_row + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), narrow);
  }
}

}  // namespace

void bf16_key_row(const uint16_t* f16_row, int64_t n, uint16_t* dst) {
  f16_row_to_bf16(f16_row, n, dst);
}

void lane_tile_scores_bf16(int64_t width, int64_t head_dim, const uint32_t* q_pairs,
                           const uint16_t* k_tile, float* scores) {
  if (width == 8) {
    scores_bf16<8>(q_pairs, head_dim, k_tile, scores);
  } else {
    scores_bf16<16>(q_pairs, head_dim, k_tile, scores);
  }
}

void lane_tile_values_bf16(int64_t width, const LaneTile& tile, const LaneBuffers& buffers,
                           const float* correction, uint32_t* p_pairs) {
  probability_pairs(buffers.scores, width, p_pairs);  // masked keys are exactly 0 here
  if (buffers.rows <= 4) {
    values_rows<4, 4>(tile, p_pairs, width, correction, 0, buffers.o, buffers.o_stride);
    return;
  }
  for (int64_t r0 = 0; r0 < buffers.rows; r0 += 8)
    values_rows<8, 2>(tile, p_pairs, width, correction, r0, buffers.o, buffers.o_stride);
}

#pragma GCC diagnostic pop

#else  // not x86-64 GCC/Clang: the F32 lanes path only

bool bf16_attention_available() { return false; }
void bf16_query_pairs(const float*, int64_t, int64_t, uint32_t*) {}
void bf16_key_row(const uint16_t*, int64_t, uint16_t*) {}
void lane_tile_scores_bf16(int64_t, int64_t, const uint32_t*, const uint16_t*, float*) {}
void lane_tile_values_bf16(int64_t, const LaneTile&, const LaneBuffers&, const float*, uint32_t*) {}

#endif

}  // namespace moa::kernels
