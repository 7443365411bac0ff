// Q8_K activation rounding and the K-quant row dots that use it (llama.cpp's pairing for Q4_K,
// Q5_K and Q6_K weights). A block's weights stay small unsigned integers (Q4_K: 0..15, Q5_K:
// 0..31, Q6_K: 0..63) that vpmaddubsw multiplies with the int8 activation; vpmaddwd applies the
// 16/32-value sub-block scales, and the offsets (Q4_K's and Q5_K's mins, Q6_K's -32) come from the
// activation's sums per 16 values. Q5_K is Q4_K plus a fifth bit per value, so one template serves
// both. Other CPUs take a plain integer loop with the same per-block sums.
#include <cmath>
#include <cstring>
#include <type_traits>

#include "gguf/quant.h"
#include "hwy/highway.h"
#include "kernels/half.h"
#include "kernels/q8_activation.h"
#include "kernels/stream_prefetch.h"
#include "util/error.h"

#if defined(__AVX512BW__) && defined(__AVX512VL__)
#define MOA_KQUANT_AVX512 1
#include <immintrin.h>
#endif

namespace moa::kernels {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::CappedTag<float, 16>;
using DI8 = hn::Rebind<int8_t, DF>;
constexpr int64_t kBlock = gguf::kQK_K;
constexpr int64_t kGroups = kBlock / 16;  // sums16 entries per block

// The first value of largest magnitude (ggml keeps the first on ties): the magnitude by a vector
// max, then the first lane that reaches it. Prefill rounds every token this way, so it is on the
// GEMM's critical path.
float signed_max(const float* x) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  auto m = hn::Zero(d);
  for (int64_t j = 0; j < kBlock; j += lanes) m = hn::Max(m, hn::Abs(hn::LoadU(d, x + j)));
  const auto amax = hn::Set(d, hn::GetLane(hn::MaxOfLanes(d, m)));
  for (int64_t j = 0; j < kBlock; j += lanes) {
    const intptr_t first = hn::FindFirstTrue(d, hn::Eq(hn::Abs(hn::LoadU(d, x + j)), amax));
    if (first >= 0) return x[j + first];
  }
  return 0.0f;  // NaNs only
}

// Sum of 16 int8 values.
int sum16(const int8_t* q) {
  const hn::RebindToSigned<DF> di;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(di));
  auto acc = hn::Zero(di);
  for (int64_t i = 0; i < 16; i += lanes)
    acc = hn::Add(acc, hn::PromoteTo(di, hn::LoadU(DI8(), q + i)));
  return hn::GetLane(hn::SumOfLanes(di, acc));
}

// Where natural value i of a 128-value group sits in Q4_K's nibble order (0, 2, 1, 3 by 32s).
int64_t q4_k_slot(int64_t i) {
  constexpr int64_t kSlot[4] = {0, 2, 1, 3};
  return i / 128 * 128 + kSlot[i % 128 / 32] * 32 + i % 32;
}

// Q5_K's qh adds 16 to value l of sub-block s where bit s of qh[l] is set; Q4_K has no qh.
template <class Block>
constexpr bool kHasFifthBit = std::is_same_v<Block, gguf::BlockQ5_K>;

#if defined(MOA_KQUANT_AVX512)
// Index vector for vpermw: 16-bit lanes 0-15 take element `a`, lanes 16-31 element `b`.
__m512i two_halves(int a, int b) {
  return _mm512_inserti64x4(_mm512_set1_epi16(static_cast<int16_t>(a)),
                            _mm256_set1_epi16(static_cast<int16_t>(b)), 1);
}

// q4_k_scales_mins in one vector: the 12 packed bytes are read as the low 3 words of a 16-byte
// load (the block's next field follows them, so the load stays inside the block).
__m128i q4_k_scales_mins_vector(const uint8_t* packed) {
  const __m128i p = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed));
  // Words 0 and 2: the low 6 bits of p0 / p1; words 1 and 3: a nibble of p2 (low, then high).
  const __m128i low = _mm_and_si128(
      _mm_srlv_epi32(_mm_shuffle_epi32(p, _MM_SHUFFLE(2, 1, 2, 0)), _mm_set_epi32(4, 0, 0, 0)),
      _mm_set_epi32(0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f));
  // Words 1 and 3 also take the top 2 bits of each byte of p0 / p1 as bits 4-5.
  const __m128i top =
      _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(p, _MM_SHUFFLE(1, 1, 0, 0)), 2),
                    _mm_set_epi32(0x30303030, 0, 0x30303030, 0));
  return _mm_or_si128(low, top);
}

// Block b of one Q4_K / Q5_K row added to its accumulators (acc: scaled sums, acc_min: mins).
template <class Block>
HWY_INLINE void add_q4_k_block(const Block& blk, const Q8KActivation& a, int64_t b, __m512& acc,
                               __m256& acc_min) {
  const __m512i nibble = _mm512_set1_epi8(0x0F), one = _mm512_set1_epi8(1);
  const int8_t* x = a.qs.data() + b * kBlock;
  const __m128i scales_mins = q4_k_scales_mins_vector(blk.scales);
  const __m512i scales = _mm512_cvtepu8_epi16(_mm256_castsi128_si256(scales_mins));
  __m512i sums = _mm512_setzero_si512();
  __m512i qh_02 = _mm512_setzero_si512();  // Q5_K: qh, then qh >> 2 (bits of sub-blocks +2)
  if constexpr (kHasFifthBit<Block>) {
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh));
    qh_02 = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
  }
  for (int c = 0; c < 2; ++c) {  // 64 bytes = sub-blocks 4c..4c+3 (low nibbles: even ones)
    const __m512i q = _mm512_loadu_si512(blk.qs + 64 * c);
    __m512i lo = _mm512_and_si512(q, nibble);
    __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), nibble);
    if constexpr (kHasFifthBit<Block>) {
      // Bit 4c (+2 in the upper half) for the low nibbles, the next bit for the high ones.
      const __m512i bits = _mm512_srli_epi16(qh_02, 4 * c);
      lo = _mm512_or_si512(lo, _mm512_slli_epi16(_mm512_and_si512(bits, one), 4));
      hi = _mm512_or_si512(hi,
                           _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(bits, 1), one), 4));
    }
    // Nibble order: the 64 activations of the low nibbles, then those of the high nibbles.
    const __m512i p_lo = _mm512_maddubs_epi16(lo, _mm512_loadu_si512(x + 128 * c));
    const __m512i p_hi = _mm512_maddubs_epi16(hi, _mm512_loadu_si512(x + 128 * c + 64));
    const __m512i s_lo = _mm512_permutexvar_epi16(two_halves(4 * c, 4 * c + 2), scales);
    const __m512i s_hi = _mm512_permutexvar_epi16(two_halves(4 * c + 1, 4 * c + 3), scales);
    sums = _mm512_add_epi32(sums, _mm512_madd_epi16(p_lo, s_lo));
    sums = _mm512_add_epi32(sums, _mm512_madd_epi16(p_hi, s_hi));
  }
  const float dx = a.scales[static_cast<size_t>(b)];
  acc = _mm512_fmadd_ps(_mm512_set1_ps(half_to_float(blk.d) * dx), _mm512_cvtepi32_ps(sums), acc);
  // min j times the sums of its two 16-value groups: each min doubled, one vpmaddwd.
  const __m256i mins = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(scales_mins, scales_mins));
  const __m256i min_sums = _mm256_madd_epi16(
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.sums16.data() + b * kGroups)), mins);
  acc_min = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(blk.dmin) * dx),
                            _mm256_cvtepi32_ps(min_sums), acc_min);
}

// kRows rows read at once (separate memory streams); each row's sum as when read alone.
template <class Block, int kRows>
void dot_q4_k(const Block* const* w, const Q8KActivation& a, int64_t n_blocks, float* y) {
  __m512 acc[kRows];
  __m256 acc_min[kRows];
  for (int r = 0; r < kRows; ++r) acc[r] = _mm512_setzero_ps(), acc_min[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b) {
    for (int r = 0; r < kRows; ++r) {
      prefetch_stream_ahead<sizeof(Block)>(w[r] + b);
      add_q4_k_block(w[r][b], a, b, acc[r], acc_min[r]);
    }
  }
  for (int r = 0; r < kRows; ++r)
    y[r] = _mm512_reduce_add_ps(acc[r]) - _mm512_reduce_add_ps(_mm512_zextps256_ps512(acc_min[r]));
}

// Index vector for vpermw: 16-bit lane i takes element first + i / 8 (one scale per 16 values,
// i.e. per 8 pair sums of vpmaddubsw).
__m512i scale_per_16(int first) {
  alignas(64) int16_t idx[32];
  for (int i = 0; i < 32; ++i) idx[i] = static_cast<int16_t>(first + i / 8);
  return _mm512_load_si512(idx);
}

// Block b of one Q6_K row added to its accumulator.
HWY_INLINE void add_q6_k_block(const gguf::BlockQ6_K& blk, const Q8KActivation& a, int64_t b,
                               const __m512i* idx, __m512& acc) {
  const __m512i low4 = _mm512_set1_epi8(0x0F), low2 = _mm512_set1_epi8(0x03);
  const int8_t* x = a.qs.data() + b * kBlock;
  const __m256i scales16 =
      _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.scales)));
  const __m512i scales = _mm512_castsi256_si512(scales16);
  __m512i sums = _mm512_setzero_si512();
  for (int h = 0; h < 2; ++h) {  // 128 values: ql[64 h ..], qh[32 h ..]
    const __m512i ql = _mm512_loadu_si512(blk.ql + 64 * h);
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh + 32 * h));
    const __m512i qh_02 =
        _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
    const __m512i qh_46 = _mm512_srli_epi16(qh_02, 4);
    // Values 0-63 and 64-127 of this half, unsigned 0..63 (the -32 is applied below).
    const __m512i q_first = _mm512_or_si512(_mm512_and_si512(ql, low4),
                                            _mm512_slli_epi16(_mm512_and_si512(qh_02, low2), 4));
    const __m512i q_second = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                                             _mm512_slli_epi16(_mm512_and_si512(qh_46, low2), 4));
    const __m512i p_first = _mm512_maddubs_epi16(q_first, _mm512_loadu_si512(x + 128 * h));
    const __m512i p_second = _mm512_maddubs_epi16(q_second, _mm512_loadu_si512(x + 128 * h + 64));
    sums = _mm512_add_epi32(
        sums, _mm512_madd_epi16(p_first, _mm512_permutexvar_epi16(idx[2 * h], scales)));
    sums = _mm512_add_epi32(
        sums, _mm512_madd_epi16(p_second, _mm512_permutexvar_epi16(idx[2 * h + 1], scales)));
  }
  // q - 32: subtract 32 * sum over groups of scale * (sum of x over the group).
  const __m256i offset = _mm256_madd_epi16(
      scales16,
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.sums16.data() + b * kGroups)));
  sums = _mm512_sub_epi32(sums, _mm512_zextsi256_si512(_mm256_slli_epi32(offset, 5)));
  acc = _mm512_fmadd_ps(_mm512_set1_ps(half_to_float(blk.d) * a.scales[static_cast<size_t>(b)]),
                        _mm512_cvtepi32_ps(sums), acc);
}

// kRows rows read at once (separate memory streams); each row's sum as when read alone.
template <int kRows>
void dot_q6_k(const gguf::BlockQ6_K* const* w, const Q8KActivation& a, int64_t n_blocks, float* y) {
  const __m512i idx[4] = {scale_per_16(0), scale_per_16(4), scale_per_16(8), scale_per_16(12)};
  __m512 acc[kRows];
  for (auto& v : acc) v = _mm512_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b) {
    for (int r = 0; r < kRows; ++r) {
      prefetch_stream_ahead<sizeof(gguf::BlockQ6_K)>(w[r] + b);
      add_q6_k_block(w[r][b], a, b, idx, acc[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) y[r] = _mm512_reduce_add_ps(acc[r]);
}
#else
// Q4_K's 12 packed bytes as 16 bytes in 4 words: 8 scales (bytes 0-7) then 8 mins (bytes
// 8-15), 6 bits each. Scales and mins 0-3 are the low 6 bits of bytes 0-3 / 4-7; 4-7 take a
// nibble of bytes 8-11 plus the top 2 bits of bytes 0-3 / 4-7.
struct ScaleWords {
  uint32_t w[4];
};
ScaleWords q4_k_scales_mins(const uint8_t* packed) {
  uint32_t p[3];
  std::memcpy(p, packed, sizeof(p));
  constexpr uint32_t kLow6 = 0x3f3f3f3f, kLow4 = 0x0f0f0f0f, kTop2 = 0x03030303;
  return {{p[0] & kLow6, (p[2] & kLow4) | (((p[0] >> 6) & kTop2) << 4), p[1] & kLow6,
           ((p[2] >> 4) & kLow4) | (((p[1] >> 6) & kTop2) << 4)}};
}

template <class Block>
float dot_q4_k_row(const Block* w, const Q8KActivation& a, int64_t n_blocks) {
  float total = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    const Block& blk = w[b];
    const int8_t* x = a.qs.data() + b * kBlock;
    const ScaleWords sm = q4_k_scales_mins(blk.scales);
    uint8_t scales_mins[16];
    std::memcpy(scales_mins, sm.w, sizeof(scales_mins));
    int32_t sum = 0, min_sum = 0;
    for (int sub = 0; sub < 8; ++sub) {
      const uint8_t* q = blk.qs + 32 * (sub / 2);
      int32_t s = 0;
      for (int i = 0; i < 32; ++i) {
        int value = sub % 2 == 0 ? q[i] & 0x0F : q[i] >> 4;
        if constexpr (kHasFifthBit<Block>) value |= ((blk.qh[i] >> sub) & 1) << 4;
        s += value * x[q4_k_slot(32 * sub + i)];
      }
      sum += scales_mins[sub] * s;
      min_sum += scales_mins[8 + sub] * (a.sums16[static_cast<size_t>(b * kGroups + 2 * sub)] +
                                         a.sums16[static_cast<size_t>(b * kGroups + 2 * sub + 1)]);
    }
    const float dx = a.scales[static_cast<size_t>(b)];
    total += half_to_float(blk.d) * dx * static_cast<float>(sum) -
             half_to_float(blk.dmin) * dx * static_cast<float>(min_sum);
  }
  return total;
}

float dot_q6_k_row(const gguf::BlockQ6_K* w, const Q8KActivation& a, int64_t n_blocks) {
  float total = 0.0f;
  for (int64_t b = 0; b < n_blocks; ++b) {
    const gguf::BlockQ6_K& blk = w[b];
    const int8_t* x = a.qs.data() + b * kBlock;
    int32_t sum = 0;
    for (int64_t i = 0; i < kBlock; ++i) {
      const int64_t h = i / 128, l = i % 32, quarter = (i % 128) / 32;
      const uint8_t low = blk.ql[64 * h + l + (quarter % 2) * 32];
      const int nibble = quarter < 2 ? low & 0x0F : low >> 4;
      const int high = (blk.qh[32 * h + l] >> (2 * quarter)) & 3;
      sum += blk.scales[i / 16] * ((nibble | (high << 4)) - 32) * x[i];
    }
    total += half_to_float(blk.d) * a.scales[static_cast<size_t>(b)] * static_cast<float>(sum);
  }
  return total;
}
template <class Block, int kRows>
void dot_q4_k(const Block* const* w, const Q8KActivation& a, int64_t n_blocks, float* y) {
  for (int r = 0; r < kRows; ++r) y[r] = dot_q4_k_row(w[r], a, n_blocks);
}

template <int kRows>
void dot_q6_k(const gguf::BlockQ6_K* const* w, const Q8KActivation& a, int64_t n_blocks, float* y) {
  for (int r = 0; r < kRows; ++r) y[r] = dot_q6_k_row(w[r], a, n_blocks);
}
#endif

}  // namespace

void quantize_activation_q8_k(const float* x, int64_t n, Q8KActivation& out) {
  if (n % kBlock != 0) fail("quantize_activation_q8_k: length {} is not a multiple of 256", n);
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  out.qs.resize(static_cast<size_t>(n));
  out.scales.resize(static_cast<size_t>(n / kBlock));
  out.sums16.resize(static_cast<size_t>(n / 16));
  out.q4_k_order = false;
  for (int64_t b = 0; b < n / kBlock; ++b) {
    const float* xb = x + b * kBlock;
    int8_t* q = out.qs.data() + b * kBlock;
    const float max = signed_max(xb);
    if (max == 0.0f) {
      std::fill_n(q, kBlock, int8_t{0});
      out.scales[static_cast<size_t>(b)] = 0.0f;
    } else {
      const float iscale = -127.0f / max;
      const auto scale = hn::Set(d, iscale);
      const auto top = hn::Set(hn::RebindToSigned<DF>(), 127);
      for (int64_t k = 0; k < kBlock; k += lanes) {
        const auto v = hn::Min(hn::NearestInt(hn::Mul(hn::LoadU(d, xb + k), scale)), top);
        hn::StoreU(hn::DemoteTo(DI8(), v), DI8(), q + k);
      }
      out.scales[static_cast<size_t>(b)] = 1.0f / iscale;
    }
    for (int64_t g = 0; g < kGroups; ++g)
      out.sums16[static_cast<size_t>(b * kGroups + g)] = static_cast<int16_t>(sum16(q + 16 * g));
  }
}

void order_for_q4_k(Q8KActivation& x) {
  if (x.q4_k_order) return;
  const std::vector<int8_t> natural = x.qs;
  for (size_t i = 0; i < natural.size(); ++i)
    x.qs[static_cast<size_t>(q4_k_slot(static_cast<int64_t>(i)))] = natural[i];
  x.q4_k_order = true;
}

bool uses_q4_k_order(gguf::TensorType type) {
  return type == gguf::TensorType::kQ4_K || type == gguf::TensorType::kQ5_K;
}

float dot_q8_k_activation(gguf::TensorType type, const void* row, const Q8KActivation& x,
                          int64_t n) {
  float y = 0.0f;
  dot_q8_k_activation_rows(type, std::span(&row, 1), x, n, &y);
  return y;
}

void dot_q8_k_activation_rows(gguf::TensorType type, std::span<const void* const> rows,
                              const Q8KActivation& x, int64_t n, float* y) {
  if (!uses_q8_k_activation(type))
    fail("dot_q8_k_activation: weight type {} does not take a Q8_K activation",
         static_cast<uint32_t>(type));
  if (uses_q4_k_order(type) != x.q4_k_order)
    fail("dot_q8_k_activation: the activation is not in the order {} needs",
         gguf::tensor_type_name(static_cast<uint32_t>(type)));
  with_row_count(rows.size(), [&]<int kRows>() {
    if (type == gguf::TensorType::kQ4_K) {
      dot_q4_k<gguf::BlockQ4_K, kRows>(rows_as<gguf::BlockQ4_K, kRows>(rows).data(), x, n / kBlock,
                                       y);
    } else if (type == gguf::TensorType::kQ5_K) {
      dot_q4_k<gguf::BlockQ5_K, kRows>(rows_as<gguf::BlockQ5_K, kRows>(rows).data(), x, n / kBlock,
                                       y);
    } else {
      dot_q6_k<kRows>(rows_as<gguf::BlockQ6_K, kRows>(rows).data(), x, n / kBlock, y);
    }
  });
}

}  // namespace moa::kernels
