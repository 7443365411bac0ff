// Q8_0 activation rounding and the int8 x int8 row dots that use it (Q8_0, Q5_0 and Q4_0 weights,
// whose 32-value blocks unpack to signed bytes). With AVX-512 VNNI + VL one block is one vpdpbusd
// (unsigned |w| times x with w's sign moved onto x, ggml's trick); other CPUs take a plain integer
// loop with identical sums, so results depend only on the F32 accumulation order. Also the F16
// and BF16 roundings that llama.cpp applies to activations for F16 and BF16 weights.
#include "kernels/q8_activation.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "gguf/quant.h"
#include "hwy/highway.h"
#include "kernels/half.h"
#include "kernels/stream_prefetch.h"
#include "util/error.h"

#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__)
#define MOA_Q8_VNNI 1
#include <immintrin.h>
#endif

namespace moa::kernels {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::CappedTag<float, 16>;
using DI8 = hn::Rebind<int8_t, DF>;
constexpr int64_t kBlock = gguf::kQK8_0;
// Highway's F16 demotion rounds to nearest even where the CPU converts natively (F16C, AArch64);
// its software emulation elsewhere does not, so those targets take the scalar conversion.
#if defined(__F16C__) || defined(__aarch64__)
constexpr bool kNativeF16 = true;
#else
constexpr bool kNativeF16 = false;
#endif
static_assert(gguf::kQK8_0 == gguf::kQK4_0 && gguf::kQK8_0 == gguf::kQK5_0);

#if defined(MOA_Q8_VNNI)
using BlockInts = __m256i;  // the 32 signed weights of one block

BlockInts signed_weights(const gguf::BlockQ8_0& b) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
}

// The 32 unsigned nibbles of 16 bytes: low nibbles are elements 0..15, high ones 16..31.
__m256i nibbles(const uint8_t* qs) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i nibble = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(packed, nibble);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(packed, 4), nibble);
  return _mm256_set_m128i(hi, lo);
}

// Q4_0 and Q5_0: the block's stored codes are its weights plus 8 / 16, unsigned bytes as they are
// (Q5_0: bit j of qh becomes 16 in byte j, vpmovm2b setting a byte per mask bit).
__m256i unsigned_weights(const gguf::BlockQ4_0& b) { return nibbles(b.qs); }
__m256i unsigned_weights(const gguf::BlockQ5_0& b) {
  uint32_t qh;
  std::memcpy(&qh, b.qh, sizeof qh);
  return _mm256_or_si256(nibbles(b.qs),
                         _mm256_and_si256(_mm256_movm_epi8(qh), _mm256_set1_epi8(0x10)));
}

BlockInts signed_weights(const gguf::BlockQ4_0& b) {
  return _mm256_sub_epi8(unsigned_weights(b), _mm256_set1_epi8(8));
}
BlockInts signed_weights(const gguf::BlockQ5_0& b) {
  return _mm256_sub_epi8(unsigned_weights(b), _mm256_set1_epi8(16));
}

// Eight int32 partial sums of w[i] * x[i]; `magnitude` = |w| (unsigned operand of vpdpbusd).
__m256i block_sums(BlockInts w, __m256i magnitude, const int8_t* x) {
  const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), magnitude, _mm256_sign_epi8(xv, w));
}

float sum_lanes(__m256 v) {
  const __m128 half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
  return _mm_cvtss_f32(_mm_add_ss(quarter, _mm_movehdup_ps(quarter)));
}

template <class Block, int kTokens>
void dot_blocks(const Block* w, const Q8Activation* const* xs, int64_t n_blocks, float* y,
                int64_t y_stride) {
  __m256 acc[kTokens];
  for (auto& a : acc) a = _mm256_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b) {
    prefetch_stream_ahead<sizeof(Block)>(w + b);
    const BlockInts q = signed_weights(w[b]);
    const __m256i magnitude = _mm256_abs_epi8(q);
    const float dw = half_to_float(w[b].d);
    for (int t = 0; t < kTokens; ++t) {
      const __m256i sums = block_sums(q, magnitude, xs[t]->qs.data() + b * kBlock);
      const __m256 scale = _mm256_set1_ps(dw * xs[t]->scales[static_cast<size_t>(b)]);
      acc[t] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sums), acc[t]);
    }
  }
  for (int t = 0; t < kTokens; ++t) y[t * y_stride] = sum_lanes(acc[t]);
}

// Integer sums of two blocks in one 512-bit vector: half the instructions per block of the 256-bit
// form, which matters because a row dot is close to instruction-bound at full memory speed.
// Q8_0 moves w's sign onto x (AVX-512 has no vpsignb; where w is 0 its magnitude zeroes the
// product). Q4_0 and Q5_0 multiply their unsigned codes by x from a seed of -offset * (sum of x),
// which saves unpacking them to signed bytes (for Q8_0 the seed's load cost more than it saved).
template <class Block>
__m512i two_block_sums(const Block* w, const int8_t* x, const int32_t* negated_sums) {
  const __m512i xv = _mm512_loadu_si512(x);
  if constexpr (std::is_same_v<Block, gguf::BlockQ8_0>) {
    const __m512i q =
        _mm512_inserti64x4(_mm512_castsi256_si512(signed_weights(w[0])), signed_weights(w[1]), 1);
    const __m512i signed_x =
        _mm512_mask_sub_epi8(xv, _mm512_movepi8_mask(q), _mm512_setzero_si512(), xv);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(q), signed_x);
  } else {
    constexpr int kOffsetShift = std::is_same_v<Block, gguf::BlockQ4_0> ? 3 : 4;  // 8 or 16
    const __m512i u = _mm512_inserti64x4(_mm512_castsi256_si512(unsigned_weights(w[0])),
                                         unsigned_weights(w[1]), 1);
    const __m512i seed = _mm512_slli_epi32(_mm512_loadu_si512(negated_sums), kOffsetShift);
    return _mm512_dpbusd_epi32(seed, u, xv);
  }
}

template <class Block>
__m512 two_block_products(const Block* w, const int8_t* x, const float* x_scales,
                          const int32_t* negated_sums, __m512 acc) {
  const __m512i sums = two_block_sums(w, x, negated_sums);
  const __m128i halves = _mm_insert_epi16(_mm_cvtsi32_si128(w[0].d), w[1].d, 1);
  const __m128 scales =
      _mm_mul_ps(_mm_cvtph_ps(halves),
                 _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x_scales))));
  const __m512 per_lane =
      _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                            _mm512_castps128_ps512(scales));
  return _mm512_fmadd_ps(per_lane, _mm512_cvtepi32_ps(sums), acc);
}

// One token, kRows rows read at once (far apart in memory: separate streams, see
// kernels/stream_prefetch.h): per row two accumulators over alternate block pairs hide the FMA
// latency, so each row's sum is the same as when it is read alone.
template <class Block, int kRows>
void dot_rows(const Block* const* w, const Q8Activation& x, int64_t n_blocks, float* y) {
  __m512 acc0[kRows], acc1[kRows];
  for (int r = 0; r < kRows; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  const int8_t* xq = x.qs.data();
  const float* xd = x.scales.data();
  const int32_t* xs = x.negated_sums.data();
  int64_t b = 0;
  for (; b + 3 < n_blocks; b += 4) {
    for (int r = 0; r < kRows; ++r) {
      prefetch_stream_ahead<4 * sizeof(Block)>(w[r] + b);
      acc0[r] = two_block_products(w[r] + b, xq + b * kBlock, xd + b, xs + b * 8, acc0[r]);
      acc1[r] = two_block_products(w[r] + b + 2, xq + (b + 2) * kBlock, xd + b + 2,
                                   xs + (b + 2) * 8, acc1[r]);
    }
  }
  const bool pair = b + 1 < n_blocks;
  const int64_t last = pair ? b + 2 : b;
  for (int r = 0; r < kRows; ++r) {
    if (pair) acc0[r] = two_block_products(w[r] + b, xq + b * kBlock, xd + b, xs + b * 8, acc0[r]);
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0[r], acc1[r]));
    if (last < n_blocks) {
      const BlockInts q = signed_weights(w[r][last]);
      const __m256i s = block_sums(q, _mm256_abs_epi8(q), xq + last * kBlock);
      sum += sum_lanes(_mm256_mul_ps(_mm256_set1_ps(half_to_float(w[r][last].d) * xd[last]),
                                     _mm256_cvtepi32_ps(s)));
    }
    y[r] = sum;
  }
}
#else
void signed_weights(const gguf::BlockQ8_0& b, int8_t* q) { std::copy_n(b.qs, kBlock, q); }

// Element i of a Q4_0/Q5_0 block: its nibble, plus 16 where `fifth` has bit i, minus `offset`.
void nibble_weights(const uint8_t* qs, uint32_t fifth, int offset, int8_t* q) {
  const auto bit = [&](int64_t j) { return static_cast<int>((fifth >> j) & 1u) << 4; };
  for (int64_t i = 0; i < kBlock / 2; ++i) {
    const int64_t high = i + kBlock / 2;
    q[i] = static_cast<int8_t>(((qs[i] & 0x0F) | bit(i)) - offset);
    q[high] = static_cast<int8_t>(((qs[i] >> 4) | bit(high)) - offset);
  }
}

void signed_weights(const gguf::BlockQ4_0& b, int8_t* q) { nibble_weights(b.qs, 0, 8, q); }

void signed_weights(const gguf::BlockQ5_0& b, int8_t* q) {
  uint32_t qh;
  std::memcpy(&qh, b.qh, sizeof qh);
  nibble_weights(b.qs, qh, 16, q);
}

template <class Block, int kTokens>
void dot_blocks(const Block* w, const Q8Activation* const* xs, int64_t n_blocks, float* y,
                int64_t y_stride) {
  float acc[kTokens] = {};
  int8_t q[kBlock];
  for (int64_t b = 0; b < n_blocks; ++b) {
    signed_weights(w[b], q);
    const float dw = half_to_float(w[b].d);
    for (int t = 0; t < kTokens; ++t) {
      const int8_t* x = xs[t]->qs.data() + b * kBlock;
      int32_t sum = 0;
      for (int64_t i = 0; i < kBlock; ++i) sum += int32_t{q[i]} * x[i];
      acc[t] += dw * xs[t]->scales[static_cast<size_t>(b)] * static_cast<float>(sum);
    }
  }
  for (int t = 0; t < kTokens; ++t) y[t * y_stride] = acc[t];
}

template <class Block, int kRows>
void dot_rows(const Block* const* w, const Q8Activation& x, int64_t n_blocks, float* y) {
  const Q8Activation* xs[1] = {&x};
  for (int r = 0; r < kRows; ++r) dot_blocks<Block, 1>(w[r], xs, n_blocks, y + r, 1);
}
#endif

// Splits the tokens into fixed-width calls so the accumulators stay in registers.
template <class Block>
void dot_tokens(const Block* w, std::span<const Q8Activation* const> xs, int64_t n_blocks, float* y,
                int64_t y_stride) {
  size_t t = 0;
  for (; t + 4 <= xs.size(); t += 4)
    dot_blocks<Block, 4>(w, xs.data() + t, n_blocks, y + t * y_stride, y_stride);
  for (; t + 2 <= xs.size(); t += 2)
    dot_blocks<Block, 2>(w, xs.data() + t, n_blocks, y + t * y_stride, y_stride);
  if (t < xs.size()) dot_blocks<Block, 1>(w, xs.data() + t, n_blocks, y + t * y_stride, y_stride);
}

// Replaces each row of x by its blocks as `quantize` rounds them: scale[block] * q.
template <class Activation>
void replace_by_blocks(void (*quantize)(const float*, int64_t, Activation&), int64_t block,
                       float* x, int64_t n, int64_t n_rows) {
  Activation q;
  for (int64_t r = 0; r < n_rows; ++r) {
    float* row = x + r * n;
    quantize(row, n, q);
    for (int64_t i = 0; i < n; ++i)
      row[i] = q.scales[static_cast<size_t>(i / block)] * q.qs[static_cast<size_t>(i)];
  }
}

// ggml's GGML_FP32_TO_BF16 and back, in place: round to nearest even on the 16 dropped bits
// (subnormals too, no flush), a NaN stays a NaN with its quiet bit set.
void round_to_bf16_grid(float* x, int64_t n) {
  const DF d;
  const hn::RebindToSigned<DF> di;
  const auto lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto low_bit = hn::Set(di, 1), half_ulp = hn::Set(di, 0x7FFF);
  const auto magnitude = hn::Set(di, 0x7FFFFFFF), infinity = hn::Set(di, 0x7F800000);
  const auto quiet = hn::Set(di, 0x00400000),
             high_half = hn::Set(di, static_cast<int32_t>(0xFFFF0000u));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto bits = hn::BitCast(di, hn::LoadU(d, x + i));
    // Integer adds wrap like ggml's uint32 arithmetic; the mask keeps the top 16 bits.
    const auto odd = hn::And(hn::ShiftRight<16>(bits), low_bit);
    const auto rounded = hn::And(hn::Add(bits, hn::Add(half_ulp, odd)), high_half);
    const auto nan = hn::Or(hn::And(bits, high_half), quiet);
    const auto is_nan = hn::Gt(hn::And(bits, magnitude), infinity);
    hn::StoreU(hn::BitCast(d, hn::IfThenElse(is_nan, nan, rounded)), d, x + i);
  }
  for (; i < n; ++i) x[i] = gguf::bf16_to_fp32(gguf::fp32_to_bf16(x[i]));
}

// Calls f with the row as an array of its type's blocks (Q8_0, Q5_0 or Q4_0).
template <class F>
float with_blocks(gguf::TensorType type, const void* row, F f) {
  switch (type) {
    case gguf::TensorType::kQ8_0:
      return f(static_cast<const gguf::BlockQ8_0*>(row));
    case gguf::TensorType::kQ5_0:
      return f(static_cast<const gguf::BlockQ5_0*>(row));
    case gguf::TensorType::kQ4_0:
      return f(static_cast<const gguf::BlockQ4_0*>(row));
    default:
      fail("dot_q8_activation: weight type {} does not take a Q8_0 activation",
           static_cast<uint32_t>(type));
  }
}

}  // namespace

bool uses_q8_activation(gguf::TensorType type) {
  return type == gguf::TensorType::kQ8_0 || type == gguf::TensorType::kQ5_0 ||
         type == gguf::TensorType::kQ4_0;
}

bool uses_q8_k_activation(gguf::TensorType type) {
  return type == gguf::TensorType::kQ4_K || type == gguf::TensorType::kQ5_K ||
         type == gguf::TensorType::kQ6_K;
}

bool rounds_activation(gguf::TensorType type) {
  return uses_q8_activation(type) || uses_q8_k_activation(type) || type == gguf::TensorType::kF16 ||
         type == gguf::TensorType::kBF16;
}

void quantize_activation(const float* x, int64_t n, Q8Activation& out) {
  if (n % kBlock != 0) fail("quantize_activation: length {} is not a multiple of 32", n);
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  out.qs.resize(static_cast<size_t>(n));
  out.scales.resize(static_cast<size_t>(n / kBlock));
  out.negated_sums.assign(static_cast<size_t>(n / kBlock * 8), 0);
  for (int64_t b = 0; b < n / kBlock; ++b) {
    const float* xb = x + b * kBlock;
    auto amax = hn::Zero(d);
    for (int64_t k = 0; k < kBlock; k += lanes) amax = hn::Max(amax, hn::Abs(hn::LoadU(d, xb + k)));
    const float scale = hn::GetLane(hn::MaxOfLanes(d, amax)) / 127.0f;
    const auto inverse = hn::Set(d, scale != 0.0f ? 1.0f / scale : 0.0f);
    out.scales[static_cast<size_t>(b)] = half_to_float(gguf::fp32_to_fp16(scale));
    const hn::RebindToSigned<DF> di;
    auto sum = hn::Zero(di);
    for (int64_t k = 0; k < kBlock; k += lanes) {
      const auto q = hn::DemoteTo(DI8(), hn::NearestInt(hn::Mul(hn::LoadU(d, xb + k), inverse)));
      hn::StoreU(q, DI8(), out.qs.data() + b * kBlock + k);
      sum = hn::Add(sum, hn::PromoteTo(di, q));  // the stored bytes, even from NaN inputs
    }
    out.negated_sums[static_cast<size_t>(b * 8)] = -hn::GetLane(hn::SumOfLanes(di, sum));
  }
}

void round_activation_grid(gguf::TensorType type, float* x, int64_t n, int64_t n_rows) {
  if (type == gguf::TensorType::kF16) {
    const DF d;
    const hn::Rebind<hwy::float16_t, DF> dh;
    const auto lanes = static_cast<int64_t>(hn::Lanes(d));
    const int64_t total = n * n_rows;
    int64_t i = 0;
    for (; kNativeF16 && i + lanes <= total; i += lanes)
      hn::StoreU(hn::PromoteTo(d, hn::DemoteTo(dh, hn::LoadU(d, x + i))), d, x + i);
    for (; i < total; ++i) x[i] = half_to_float(gguf::fp32_to_fp16(x[i]));
    return;
  }
  if (type == gguf::TensorType::kBF16) {
    round_to_bf16_grid(x, n * n_rows);
    return;
  }
  if (uses_q8_k_activation(type)) {
    replace_by_blocks<Q8KActivation>(quantize_activation_q8_k, gguf::kQK_K, x, n, n_rows);
  } else if (uses_q8_activation(type)) {
    replace_by_blocks<Q8Activation>(quantize_activation, kBlock, x, n, n_rows);
  }
}

float dot_q8_activation(gguf::TensorType type, const void* row, const Q8Activation& x, int64_t n) {
  float y = 0.0f;
  dot_q8_activation_rows(type, std::span(&row, 1), x, n, &y);
  return y;
}

void dot_q8_activation_rows(gguf::TensorType type, std::span<const void* const> rows,
                            const Q8Activation& x, int64_t n, float* y) {
  with_blocks(type, rows[0], [&]<class Block>(const Block*) {
    with_row_count(rows.size(), [&]<int kRows>() {
      dot_rows<Block, kRows>(rows_as<Block, kRows>(rows).data(), x, n / kBlock, y);
    });
    return 0.0f;
  });
}

void dot_q8_activation_batch(gguf::TensorType type, const void* row,
                             std::span<const Q8Activation* const> xs, int64_t n, float* y,
                             int64_t y_stride) {
  with_blocks(type, row, [&](const auto* blocks) {
    dot_tokens(blocks, xs, n / kBlock, y, y_stride);
    return 0.0f;
  });
}

}  // namespace moa::kernels
