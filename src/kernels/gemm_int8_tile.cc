// Micro-kernels of the int8 prefill GEMM (kernels/gemm_int8.h). A tile is up to 6 tokens x 2
// groups of 16 weight rows: per 4 values, one 64-byte load of packed weights per group and one
// broadcast of 4 activation bytes per token feed tokens x groups vpdpbusd, so each weight load
// serves every token and the accumulators never leave registers. Integer sums run over one
// sub-block (32 values; 16 for Q6_K), starting from -offset * (activation sum) to undo the
// unsigned weight offset, then one convert + FMA applies the per-row float scale; K-quants fold
// the 8 mins in with vpdpwssd and multiply by the activation's super-block scale once. Without
// AVX-512 VNNI the same integer sums run as plain loops (correct everywhere, not fast).
#include <cstring>

#include "kernels/gemm_int8.h"
#include "util/error.h"

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512F__)
#define MOA_GEMM_VNNI 1
#include <immintrin.h>
#endif

namespace moa::kernels {
namespace {

// Compile-time shape of one packed format (see Int8GemmFormat).
template <int kSuperK, int kSubK, bool kMins>
struct Shape {
  static constexpr int kSubs = kSuperK / kSubK;
  static constexpr int64_t kScalesAt = int64_t{kSuperK} * kGemmLanes;
  static constexpr int64_t kMinsAt = kScalesAt + int64_t{kSubs} * kGemmLanes * 4;
  static constexpr int64_t kDminAt = kMinsAt + 4 * kGemmLanes * 4;
  static constexpr int64_t kGroupBytes = kMins ? kDminAt + kGemmLanes * 4 : kMinsAt;
};

#if defined(MOA_GEMM_VNNI)
int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// vcvtdq2ps; the masked form because GCC 12 flags the plain intrinsic's undefined source as
// maybe-uninitialized once inlined here.
__m512 to_float(__m512i v) { return _mm512_maskz_cvtepi32_ps(0xFFFF, v); }

template <int kSuperK, int kSubK, bool kMins, int T, int G>
void tile_vnni(const Int8Tile& a) {
  using S = Shape<kSuperK, kSubK, kMins>;
  __mmask16 rows[G];
  for (int g = 0; g < G; ++g) {
    const int64_t valid = a.n_rows - int64_t{g} * kGemmLanes;
    rows[g] = valid >= kGemmLanes ? __mmask16{0xFFFF}
                                  : static_cast<__mmask16>((1u << (valid > 0 ? valid : 0)) - 1);
  }
  __m512 acc[T][G];
  for (int t = 0; t < T; ++t)
    for (int g = 0; g < G; ++g)
      acc[t][g] = a.accumulate ? _mm512_maskz_loadu_ps(rows[g], a.y + t * a.y_stride + g * 16)
                               : _mm512_setzero_ps();
  for (int64_t s = 0; s < a.n_super; ++s) {
    const uint8_t* w = a.w + s * S::kGroupBytes;
    const int8_t* x = a.x + s * kSuperK;
    // Sub-block sums scaled by the weight scales, before the activation's. Zeroed (an FMA onto
    // zero is the product exactly) so no -O level or -march can see it read uninitialised.
    __m512 super[T][G];
    for (int t = 0; t < T; ++t)
      for (int g = 0; g < G; ++g) super[t][g] = _mm512_setzero_ps();
    for (int j = 0; j < S::kSubs; ++j) {
      __m512i sums[T][G];
      for (int t = 0; t < T; ++t) {
        const __m512i init = _mm512_set1_epi32(a.x_init[t * a.x_init_stride + s * S::kSubs + j]);
        for (int g = 0; g < G; ++g) sums[t][g] = init;
      }
      for (int k = 0; k < kSubK / 4; ++k) {
        __m512i wv[G];
        for (int g = 0; g < G; ++g)
          wv[g] = _mm512_loadu_si512(w + g * a.group_stride + (j * kSubK / 4 + k) * 64);
        for (int t = 0; t < T; ++t) {
          const __m512i xv = _mm512_set1_epi32(load_i32(x + t * a.x_stride + j * kSubK + 4 * k));
          for (int g = 0; g < G; ++g) sums[t][g] = _mm512_dpbusd_epi32(sums[t][g], wv[g], xv);
        }
      }
      for (int g = 0; g < G; ++g) {
        const __m512 scale = _mm512_loadu_ps(
            reinterpret_cast<const float*>(w + g * a.group_stride + S::kScalesAt) + j * 16);
        for (int t = 0; t < T; ++t) {
          const __m512 sum = to_float(sums[t][g]);
          if constexpr (S::kSubs == 1) {
            const __m512 dx = _mm512_set1_ps(a.x_scales[t * a.x_scales_stride + s]);
            acc[t][g] = _mm512_fmadd_ps(sum, _mm512_mul_ps(scale, dx), acc[t][g]);
          } else {
            super[t][g] = _mm512_fmadd_ps(sum, scale, super[t][g]);
          }
        }
      }
    }
    if constexpr (S::kSubs > 1) {
      if constexpr (kMins) {
        __m512i min_sums[T][G];
        for (int t = 0; t < T; ++t)
          for (int g = 0; g < G; ++g) min_sums[t][g] = _mm512_setzero_si512();
        for (int p = 0; p < 4; ++p) {
          __m512i mins[G];
          for (int g = 0; g < G; ++g)
            mins[g] = _mm512_loadu_si512(w + g * a.group_stride + S::kMinsAt + p * 64);
          for (int t = 0; t < T; ++t) {
            const __m512i xv = _mm512_set1_epi32(a.x_min_sums[t * a.x_min_sums_stride + s * 4 + p]);
            for (int g = 0; g < G; ++g)
              min_sums[t][g] = _mm512_dpwssd_epi32(min_sums[t][g], mins[g], xv);
          }
        }
        for (int g = 0; g < G; ++g) {
          const __m512 dmin =
              _mm512_loadu_ps(reinterpret_cast<const float*>(w + g * a.group_stride + S::kDminAt));
          for (int t = 0; t < T; ++t)
            super[t][g] = _mm512_fnmadd_ps(to_float(min_sums[t][g]), dmin, super[t][g]);
        }
      }
      for (int t = 0; t < T; ++t) {
        const __m512 dx = _mm512_set1_ps(a.x_scales[t * a.x_scales_stride + s]);
        for (int g = 0; g < G; ++g) acc[t][g] = _mm512_fmadd_ps(super[t][g], dx, acc[t][g]);
      }
    }
  }
  for (int t = 0; t < T; ++t)
    for (int g = 0; g < G; ++g)
      _mm512_mask_storeu_ps(a.y + t * a.y_stride + g * 16, rows[g], acc[t][g]);
}
#endif

// The same sums one lane at a time: integer sub-block sums are identical, float rounding close.
template <int kSuperK, int kSubK, bool kMins>
void tile_portable(const Int8Tile& a) {
  using S = Shape<kSuperK, kSubK, kMins>;
  for (int t = 0; t < a.n_tokens; ++t) {
    for (int64_t r = 0; r < a.n_rows && r < int64_t{a.n_groups} * kGemmLanes; ++r) {
      const int64_t g = r / kGemmLanes, lane = r % kGemmLanes;
      float acc = a.accumulate ? a.y[t * a.y_stride + r] : 0.0f;
      for (int64_t s = 0; s < a.n_super; ++s) {
        const uint8_t* w = a.w + g * a.group_stride + s * S::kGroupBytes;
        const int8_t* x = a.x + t * a.x_stride + s * kSuperK;
        const float dx = a.x_scales[t * a.x_scales_stride + s];
        float super = 0.0f;
        for (int j = 0; j < S::kSubs; ++j) {
          int32_t sum = a.x_init[t * a.x_init_stride + s * S::kSubs + j];
          for (int v = j * kSubK; v < (j + 1) * kSubK; ++v)
            sum += int32_t{w[(v / 4) * 64 + lane * 4 + v % 4]} * x[v];
          float scale;
          std::memcpy(&scale, w + S::kScalesAt + (j * kGemmLanes + lane) * 4, sizeof scale);
          if constexpr (S::kSubs == 1) {
            acc += static_cast<float>(sum) * (scale * dx);
          } else {
            super += static_cast<float>(sum) * scale;
          }
        }
        if constexpr (kMins) {
          int32_t min_sum = 0;
          for (int p = 0; p < 4; ++p) {
            int16_t mins[2], xs[2];
            std::memcpy(mins, w + S::kMinsAt + (p * kGemmLanes + lane) * 4, sizeof mins);
            const int32_t pair = a.x_min_sums[t * a.x_min_sums_stride + s * 4 + p];
            std::memcpy(xs, &pair, sizeof xs);
            min_sum += int32_t{mins[0]} * xs[0] + int32_t{mins[1]} * xs[1];
          }
          float dmin;
          std::memcpy(&dmin, w + S::kDminAt + lane * 4, sizeof dmin);
          super -= static_cast<float>(min_sum) * dmin;
        }
        if constexpr (S::kSubs > 1) acc += super * dx;
      }
      a.y[t * a.y_stride + r] = acc;
    }
  }
}

template <int kSuperK, int kSubK, bool kMins>
void run_format(const Int8Tile& a, bool portable) {
  static_assert(Shape<kSuperK, kSubK, kMins>::kGroupBytes % 64 == 0);
  if (portable) return tile_portable<kSuperK, kSubK, kMins>(a);
#if defined(MOA_GEMM_VNNI)
  static_assert(kTileTokens == 6 && kTileGroups == 2);
  const auto by_groups = [&]<int T>() {
    if (a.n_groups == 2) return tile_vnni<kSuperK, kSubK, kMins, T, 2>(a);
    return tile_vnni<kSuperK, kSubK, kMins, T, 1>(a);
  };
  if constexpr (!kMins) {  // the 6-token tiles (tile_tokens)
    if (a.n_tokens == 6) return by_groups.template operator()<6>();
    if (a.n_tokens == 5) return by_groups.template operator()<5>();
  }
  switch (a.n_tokens) {
    case 4:
      return by_groups.template operator()<4>();
    case 3:
      return by_groups.template operator()<3>();
    case 2:
      return by_groups.template operator()<2>();
    default:
      return by_groups.template operator()<1>();
  }
#else
  tile_portable<kSuperK, kSubK, kMins>(a);
#endif
}

}  // namespace

bool int8_gemm_is_vectorized() {
#if defined(MOA_GEMM_VNNI)
  return true;
#else
  return false;
#endif
}

void run_int8_tile(const Int8GemmFormat& f, const Int8Tile& tile, bool portable) {
  if (f.super_k == 32) return run_format<32, 32, false>(tile, portable);
  if (f.mins) return run_format<256, 32, true>(tile, portable);
  if (f.sub_k == 16) return run_format<256, 16, false>(tile, portable);
  fail("run_int8_tile: no micro-kernel for a {}-value super-block", f.super_k);
}

}  // namespace moa::kernels
