// Weight side of the int8 prefill GEMM (kernels/gemm_int8.h): unpacks each stored block of a
// weight row to unsigned bytes and float scales, and interleaves 16 rows so that 4 consecutive
// values of each row share one 32-bit lane. Runs once per panel per matmul: each row's block is
// unpacked on its own (plain code the compiler vectorizes), then the 16 rows' 4-byte pieces are
// interleaved by an in-register transpose where AVX-512 is there (a 4-byte scatter per piece
// took a tenth of a Q8_0 GEMM and a fifth of a Q4_0 one).
#include <algorithm>
#include <cstring>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "gguf/k_quant_scales.h"
#include "gguf/quant.h"
#include "kernels/gemm_int8.h"
#include "kernels/half.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

using gguf::TensorType;

// One super-block of one row, unpacked.
struct Unpacked {
  alignas(64) uint8_t q[gguf::kQK_K];
  float scales[16];
  int16_t mins[8];
  float dmin = 0.0f;
};

void unpack(const gguf::BlockQ8_0& b, Unpacked& u) {
  // Signed byte w + 128 as unsigned: flip the sign bit.
  for (int i = 0; i < 32; ++i) u.q[i] = static_cast<uint8_t>(b.qs[i]) ^ 0x80u;
  u.scales[0] = half_to_float(b.d);
}

void unpack(const gguf::BlockQ4_0& b, Unpacked& u) {
  for (int i = 0; i < 16; ++i) {
    u.q[i] = b.qs[i] & 0x0F;
    u.q[i + 16] = b.qs[i] >> 4;
  }
  u.scales[0] = half_to_float(b.d);
}

void unpack(const gguf::BlockQ5_0& b, Unpacked& u) {
  uint32_t qh;
  std::memcpy(&qh, b.qh, sizeof qh);
  for (int i = 0; i < 16; ++i) {
    u.q[i] = static_cast<uint8_t>((b.qs[i] & 0x0F) | (((qh >> i) & 1u) << 4));
    u.q[i + 16] = static_cast<uint8_t>((b.qs[i] >> 4) | (((qh >> (i + 16)) & 1u) << 4));
  }
  u.scales[0] = half_to_float(b.d);
}

// Q4_K and Q5_K: sub-blocks 2p and 2p+1 are the low and high nibbles of qs[32p .. 32p+31]; Q5_K's
// qh[l] bit s adds 16 to value l of sub-block s.
template <class Block>
void unpack_k_nibbles(const Block& b, const uint8_t* qh, Unpacked& u) {
  const float d = half_to_float(b.d);
  for (int p = 0; p < 4; ++p) {
    const uint8_t* qs = b.qs + 32 * p;
    uint8_t* lo = u.q + 64 * p;
    uint8_t* hi = lo + 32;
    for (int l = 0; l < 32; ++l) {
      lo[l] = qs[l] & 0x0F;
      hi[l] = qs[l] >> 4;
    }
    if (qh != nullptr) {
      for (int l = 0; l < 32; ++l) {
        lo[l] = static_cast<uint8_t>(lo[l] | (((qh[l] >> (2 * p)) & 1) << 4));
        hi[l] = static_cast<uint8_t>(hi[l] | (((qh[l] >> (2 * p + 1)) & 1) << 4));
      }
    }
  }
  for (int j = 0; j < 8; ++j) {
    int scale = 0, min = 0;
    gguf::q4_k_scale_min(b.scales, j, &scale, &min);
    u.scales[j] = d * static_cast<float>(scale);
    u.mins[j] = static_cast<int16_t>(min);
  }
  u.dmin = half_to_float(b.dmin);
}

void unpack(const gguf::BlockQ4_K& b, Unpacked& u) { unpack_k_nibbles(b, nullptr, u); }
void unpack(const gguf::BlockQ5_K& b, Unpacked& u) { unpack_k_nibbles(b, b.qh, u); }

// Q6_K: value l + 32k of half h takes the low nibble of ql[64h + l + 32(k & 1)] (high nibble for
// k >= 2) and bits 2k..2k+1 of qh[32h + l]; stored code 0..63 is w + 32.
void unpack(const gguf::BlockQ6_K& b, Unpacked& u) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = b.ql + 64 * h;
    const uint8_t* qh = b.qh + 32 * h;
    uint8_t* q = u.q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      q[l] = static_cast<uint8_t>((ql[l] & 0x0F) | ((qh[l] & 3) << 4));
      q[l + 32] = static_cast<uint8_t>((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4));
      q[l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
      q[l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
    }
  }
  const float d = half_to_float(b.d);
  for (int j = 0; j < 16; ++j) u.scales[j] = d * static_cast<float>(b.scales[j]);
}

// Interleaves 32 quant bytes of each of the 16 rows: dst[64 k + 4 lane + b] = rows[lane][4 k + b]
// for k < 8, i.e. a transpose of 16 rows x 8 four-byte pieces.
void interleave_32_values(const uint8_t* const* rows, uint8_t* dst) {
#if defined(__AVX512F__)
  // Register p starts as pieces 0..7 of rows p and p + 8 (position = 8 * (lane >= 8) + k). Each
  // stage swaps one bit of the register index (a bit of the row) with the same bit of the position
  // (a bit of k); after three, register k holds piece k of every row at position lane.
  __m512i r[8];
  for (int p = 0; p < 8; ++p) {
    // Masked forms throughout: GCC 12 flags the undefined upper half of a widened 256-bit
    // vector (and the plain insert's undefined source) as maybe-uninitialized here.
    const __m512i low = _mm512_maskz_loadu_epi32(0x00FF, rows[p]);
    const __m256i high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[p + 8]));
    r[p] = _mm512_mask_inserti64x4(low, 0xFF, low, high, 1);
  }
  for (int bit = 1; bit < 8; bit <<= 1) {
    alignas(64) int32_t keep[16], take[16];  // sources: 0-15 the first register, 16-31 the second
    for (int q = 0; q < 16; ++q) {
      keep[q] = (q & bit) != 0 ? 16 + (q & ~bit) : q;
      take[q] = (q & bit) != 0 ? 16 + q : (q | bit);
    }
    const __m512i keep_index = _mm512_load_si512(keep), take_index = _mm512_load_si512(take);
    for (int p = 0; p < 8; ++p) {
      if ((p & bit) != 0) continue;
      const __m512i a = r[p], b = r[p | bit];
      r[p] = _mm512_permutex2var_epi32(a, keep_index, b);
      r[p | bit] = _mm512_permutex2var_epi32(a, take_index, b);
    }
  }
  for (int k = 0; k < 8; ++k) _mm512_storeu_si512(dst + 64 * k, r[k]);
#else
  for (int64_t lane = 0; lane < kGemmLanes; ++lane) {
    for (int64_t k = 0; k < 8; ++k)
      std::memcpy(dst + k * 4 * kGemmLanes + 4 * lane, rows[lane] + 4 * k, 4);
  }
#endif
}

// Writes the 16 rows' unpacked super-blocks as one group's super-block at `dst`.
void write_group(const Unpacked* u, const Int8GemmFormat& f, uint8_t* dst) {
  const uint8_t* rows[kGemmLanes];
  for (int64_t v = 0; v < f.super_k; v += 32) {
    for (int64_t lane = 0; lane < kGemmLanes; ++lane) rows[lane] = u[lane].q + v;
    interleave_32_values(rows, dst + v * kGemmLanes);
  }
  auto* scales = reinterpret_cast<float*>(dst + f.super_k * kGemmLanes);
  for (int64_t j = 0; j < f.subs; ++j) {
    for (int64_t lane = 0; lane < kGemmLanes; ++lane)
      scales[j * kGemmLanes + lane] = u[lane].scales[j];
  }
  if (!f.mins) return;
  auto* mins = reinterpret_cast<int16_t*>(scales + f.subs * kGemmLanes);
  auto* dmin = reinterpret_cast<float*>(mins + 4 * kGemmLanes * 2);
  for (int64_t lane = 0; lane < kGemmLanes; ++lane) {
    for (int64_t p = 0; p < 4; ++p) {
      mins[(p * kGemmLanes + lane) * 2] = u[lane].mins[2 * p];
      mins[(p * kGemmLanes + lane) * 2 + 1] = u[lane].mins[2 * p + 1];
    }
    dmin[lane] = u[lane].dmin;
  }
}

template <class Block>
constexpr int64_t kPrefetchBlocks = std::max<int64_t>(1, 512 / sizeof(Block));

template <class Block>
void pack_groups(const WeightMatrix& w, const Int8GemmFormat& f, int64_t r0, int64_t n_groups,
                 uint8_t* out) {
  const int64_t n_super = w.cols / f.super_k;
  const size_t row_bytes = gguf::row_bytes(w.type, w.cols);
  const int64_t group_bytes = n_super * f.group_bytes;
  Unpacked u[kGemmLanes];
  for (int64_t g = 0; g < n_groups; ++g) {
    const int64_t first = r0 + g * kGemmLanes;
    const int64_t n_rows = std::min<int64_t>(kGemmLanes, w.rows - first);
    // Rows past the matrix stay zero: weights, scales and mins of 0 add nothing.
    for (int64_t lane = n_rows; lane < kGemmLanes; ++lane) u[lane] = Unpacked{};
    const auto* rows = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(first) * row_bytes;
    for (int64_t s = 0; s < n_super; ++s) {
      // 16 rows are read side by side: each asks for its block ~512 bytes ahead, as one stream
      // alone would have from the hardware prefetcher.
      const bool ahead = s + kPrefetchBlocks<Block> < n_super;
      for (int64_t lane = 0; lane < n_rows; ++lane) {
        const auto* blocks =
            reinterpret_cast<const Block*>(rows + static_cast<size_t>(lane) * row_bytes);
        if (ahead) {
          const auto* next = reinterpret_cast<const char*>(blocks + s + kPrefetchBlocks<Block>);
          for (size_t b = 0; b < sizeof(Block); b += 64) __builtin_prefetch(next + b);
        }
        unpack(blocks[s], u[lane]);
      }
      write_group(u, f, out + g * group_bytes + s * f.group_bytes);
    }
  }
}

}  // namespace

bool int8_gemm_supports(TensorType type) {
  switch (type) {
    case TensorType::kQ8_0:
    case TensorType::kQ5_0:
    case TensorType::kQ4_0:
    case TensorType::kQ4_K:
    case TensorType::kQ5_K:
    case TensorType::kQ6_K:
      return true;
    default:
      return false;
  }
}

Int8GemmFormat int8_gemm_format(TensorType type) {
  Int8GemmFormat f;
  switch (type) {
    case TensorType::kQ8_0:
    case TensorType::kQ5_0:
    case TensorType::kQ4_0:
      f = {32, 32, 1, false, 8, 0};
      if (type == TensorType::kQ8_0) f.offset = 128;
      if (type == TensorType::kQ5_0) f.offset = 16;
      break;
    case TensorType::kQ4_K:
    case TensorType::kQ5_K:
      f = {gguf::kQK_K, 32, 8, true, 0, 0};
      break;
    case TensorType::kQ6_K:
      f = {gguf::kQK_K, 16, 16, false, 32, 0};
      break;
    default:
      fail("gemm_int8: weight type {} is not a block-quantized type it multiplies",
           gguf::tensor_type_name(static_cast<uint32_t>(type)));
  }
  f.group_bytes = f.super_k * kGemmLanes + f.subs * kGemmLanes * 4 +
                  (f.mins ? 4 * kGemmLanes * 4 + kGemmLanes * 4 : 0);
  return f;
}

void pack_int8_gemm_groups(const WeightMatrix& w, int64_t r0, int64_t n_groups, uint8_t* out) {
  const Int8GemmFormat f = int8_gemm_format(w.type);
  switch (w.type) {
    case TensorType::kQ8_0:
      return pack_groups<gguf::BlockQ8_0>(w, f, r0, n_groups, out);
    case TensorType::kQ5_0:
      return pack_groups<gguf::BlockQ5_0>(w, f, r0, n_groups, out);
    case TensorType::kQ4_0:
      return pack_groups<gguf::BlockQ4_0>(w, f, r0, n_groups, out);
    case TensorType::kQ4_K:
      return pack_groups<gguf::BlockQ4_K>(w, f, r0, n_groups, out);
    case TensorType::kQ5_K:
      return pack_groups<gguf::BlockQ5_K>(w, f, r0, n_groups, out);
    default:
      return pack_groups<gguf::BlockQ6_K>(w, f, r0, n_groups, out);
  }
}

}  // namespace moa::kernels
