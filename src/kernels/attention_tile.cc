// Tile math of flash attention. Keys and values of a tile are converted once to F32 (padded to
// whole SIMD vectors) and shared by every query head of the KV group. Scores come from K^T
// (vectorised over keys, no reductions) when the block has many rows, or from per-key dot
// products when it has few (decode), where transposing K would cost more than the math.
// Masked scores are -inf; the online softmax rescales the running sums when the max grows.
#include <algorithm>
#include <cmath>
#include <limits>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "hwy/highway.h"
#include "kernels/attention_tile.h"
#include "kernels/exp_vector.h"
#include "kernels/half.h"

namespace moa::kernels {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::CappedTag<float, 16>;  // kKeyTile is a multiple of 4 vectors

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kTransposeMinRows = 16;

int64_t round_up(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// Converts n stored K/V values to F32 and zero-fills dst up to `padded`.
void load_row(KvType type, const void* src_row, int64_t n, int64_t padded, float* dst) {
  load_kv_row(type, src_row, n, dst);
  std::fill(dst + n, dst + padded, 0.0f);
}

// The stored row starting at element `element` (a multiple of head_dim) of base.
const void* row_address(KvType type, const void* base, int64_t element, int64_t head_dim) {
  return static_cast<const uint8_t*>(base) + kv_bytes(type, element, head_dim);
}

// Keeps v in a register: GCC otherwise folds a load shared by several FMAs into each of them as a
// memory operand, and the reloads (20 loads per 16 FMAs in the scores) bound the loop.
template <class V>
HWY_INLINE void keep_in_register(V& v) {
#if HWY_TARGET <= HWY_AVX2
  asm("" : "+v"(v.raw));
#else
  (void)v;
#endif
}

// scores[r][0..kKeyTile) for kRows rows from K^T laid out [head_dim][kKeyTile]: each K^T vector
// loaded once serves every row (4 rows x 4 vectors of accumulators fit the register file).
template <int kRows>
void scores_from_transposed(const float* q, int64_t q_stride, const float* kt, int64_t head_dim,
                            float* scores) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t c = 0; c < kKeyTile; c += 4 * lanes) {
    hn::Vec<DF> acc[kRows][4];
    for (auto& row : acc) {
      for (auto& a : row) a = hn::Zero(d);
    }
    for (int64_t i = 0; i < head_dim; ++i) {
      const float* krow = kt + i * kKeyTile + c;
      hn::Vec<DF> k[4];
      for (int v = 0; v < 4; ++v) {
        k[v] = hn::LoadU(d, krow + v * lanes);
        keep_in_register(k[v]);
      }
      for (int r = 0; r < kRows; ++r) {
        const auto qr = hn::Set(d, q[r * q_stride + i]);
        for (int v = 0; v < 4; ++v) acc[r][v] = hn::MulAdd(qr, k[v], acc[r][v]);
      }
    }
    for (int r = 0; r < kRows; ++r) {
      for (int v = 0; v < 4; ++v) hn::StoreU(acc[r][v], d, scores + r * kKeyTile + c + v * lanes);
    }
  }
}

#if defined(__AVX512F__)
// GCC 12 flags the intrinsics' own "undefined" placeholder registers as uninitialised.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// dst[c * dst_stride + k] = src[k * src_stride + c] for a 16 x 16 block: three rounds of
// in-register shuffles instead of 256 scalar moves (the K^T of every attention tile).
void transpose_16x16(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
  __m512 r[16], t[16];
  for (int k = 0; k < 16; ++k) r[k] = _mm512_loadu_ps(src + k * src_stride);
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  const auto lo_pd = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  const auto hi_pd = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  for (int k = 0; k < 4; ++k) {  // r[4k + m]: rows 4k..4k+3 at column 4 * lane + m
    r[4 * k] = lo_pd(t[4 * k], t[4 * k + 2]);
    r[4 * k + 1] = hi_pd(t[4 * k], t[4 * k + 2]);
    r[4 * k + 2] = lo_pd(t[4 * k + 1], t[4 * k + 3]);
    r[4 * k + 3] = hi_pd(t[4 * k + 1], t[4 * k + 3]);
  }
  for (int m = 0; m < 4; ++m) {
    const __m512 x0 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x44);
    const __m512 x1 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xEE);
    const __m512 y0 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x44);
    const __m512 y1 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xEE);
    _mm512_storeu_ps(dst + (0 + m) * dst_stride, _mm512_shuffle_f32x4(x0, y0, 0x88));
    _mm512_storeu_ps(dst + (4 + m) * dst_stride, _mm512_shuffle_f32x4(x0, y0, 0xDD));
    _mm512_storeu_ps(dst + (8 + m) * dst_stride, _mm512_shuffle_f32x4(x1, y1, 0x88));
    _mm512_storeu_ps(dst + (12 + m) * dst_stride, _mm512_shuffle_f32x4(x1, y1, 0xDD));
  }
}
#pragma GCC diagnostic pop
#endif

float dot_padded(const float* a, const float* b, int64_t n_padded) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  auto acc0 = hn::Zero(d), acc1 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 2 * lanes <= n_padded; i += 2 * lanes) {
    acc0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), acc0);
    acc1 = hn::MulAdd(hn::LoadU(d, a + i + lanes), hn::LoadU(d, b + i + lanes), acc1);
  }
  if (i < n_padded) acc0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), acc0);
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
}

// For each of kRows rows: o = o * correction + sum_j p[j] * v[j], over head_pad values (whole
// vectors); each value vector loaded once serves every row.
template <int kRows, int kVectors>
void accumulate_value_slice(const float* const* p, const float* v, int64_t n_keys, int64_t head_pad,
                            const float* correction, float* const* o, int64_t c) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  hn::Vec<DF> acc[kRows][kVectors];
  for (int r = 0; r < kRows; ++r) {
    for (int k = 0; k < kVectors; ++k)
      acc[r][k] = hn::Mul(hn::LoadU(d, o[r] + c + k * lanes), hn::Set(d, correction[r]));
  }
  for (int64_t j = 0; j < n_keys; ++j) {
    bool any = false;  // masked keys (p = 0 in every row) cost nothing
    for (int r = 0; r < kRows; ++r) any = any || p[r][j] != 0.0f;
    if (!any) continue;
    hn::Vec<DF> values[kVectors];
    for (int k = 0; k < kVectors; ++k) {
      values[k] = hn::LoadU(d, v + j * head_pad + c + k * lanes);
      keep_in_register(values[k]);
    }
    for (int r = 0; r < kRows; ++r) {
      const auto pj = hn::Set(d, p[r][j]);
      for (int k = 0; k < kVectors; ++k) acc[r][k] = hn::MulAdd(pj, values[k], acc[r][k]);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (int k = 0; k < kVectors; ++k) hn::StoreU(acc[r][k], d, o[r] + c + k * lanes);
  }
}

template <int kRows>
void accumulate_values(const float* const* p, const float* v, int64_t n_keys, int64_t head_pad,
                       const float* correction, float* const* o) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  int64_t c = 0;
  for (; c + 4 * lanes <= head_pad; c += 4 * lanes)
    accumulate_value_slice<kRows, 4>(p, v, n_keys, head_pad, correction, o, c);
  for (; c < head_pad; c += lanes)
    accumulate_value_slice<kRows, 1>(p, v, n_keys, head_pad, correction, o, c);
}

}  // namespace

void load_kv_row(KvType type, const void* src_row, int64_t n, float* dst) {
  if (type == KvType::kF32) {
    std::copy_n(static_cast<const float*>(src_row), n, dst);
    return;
  }
  if (type == KvType::kQ8_0) {
    dequantize_kv_row_q8_0(src_row, n, dst);
    return;
  }
  const DF d;
  const hn::Rebind<hwy::float16_t, DF> dh;
  const auto* src = static_cast<const uint16_t*>(src_row);
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(src + i))), d,
               dst + i);
  }
  for (; i < n; ++i) dst[i] = half_to_float(src[i]);
}

float exp_shifted_tile(float* s, float shift) {
  const DF d;
  const auto lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto neg_shift = hn::Set(d, -shift), neg_inf = hn::Set(d, kNegInf);
  auto sum = hn::Zero(d);
  for (int64_t j = 0; j < kKeyTile; j += lanes) {
    const auto x = hn::LoadU(d, s + j);
    const auto e =
        hn::IfThenZeroElse(hn::Eq(x, neg_inf), exp_nonpositive(d, hn::Add(x, neg_shift)));
    hn::StoreU(e, d, s + j);
    sum = hn::Add(sum, e);
  }
  return hn::GetLane(hn::SumOfLanes(d, sum));
}

KeyTiles visible_key_tiles(int64_t q_first, int64_t q_last, int64_t key_pos0, int64_t n_keys,
                           const BandMask& mask) {
  // In slot coordinates (position - key_pos0) the mask keeps its span; sinks shrink.
  const int64_t first = q_first - key_pos0, last = q_last - key_pos0;
  KeyTiles tiles;
  tiles.end_key = std::min(n_keys, last + 1);
  if (tiles.end_key <= 0) return tiles;
  tiles.end_tiles = (tiles.end_key + kKeyTile - 1) / kKeyTile;
  const int64_t sink_slots =
      mask.sinks <= key_pos0 ? 0 : std::min(mask.sinks - key_pos0, tiles.end_key);
  tiles.sink_tiles = (sink_slots + kKeyTile - 1) / kKeyTile;
  // span <= 0 shows no band; otherwise the earliest band key is the first query's.
  int64_t band_slot = tiles.end_key;
  if (mask.span > 0) band_slot = mask.span > first ? 0 : first - mask.span + 1;
  const int64_t band_tile = std::min(band_slot / kKeyTile, tiles.end_tiles);
  tiles.band_first = std::max(band_tile, tiles.sink_tiles);
  return tiles;
}

namespace {

// Buffers only grow: a worker reused across calls never reallocates (or re-zeroes) them.
void grow(std::vector<float>& buffer, size_t size) {
  if (buffer.size() < size) buffer.resize(size);
}

}  // namespace

void TileWorker::reset(const AttentionShape& shape, KvType type, const float* q, int64_t q_pos0) {
  shape_ = shape;
  type_ = type;
  q_ = q;
  q_pos0_ = q_pos0;
  group_ = shape.n_head / shape.n_head_kv;
  head_pad_ = round_up(shape.head_dim, static_cast<int64_t>(hn::Lanes(DF())));
  const auto max_rows = static_cast<size_t>(group_ * kQueryTile);
  const auto hp = static_cast<size_t>(head_pad_);
  grow(q_tile_, max_rows * hp);
  grow(q_lanes_, static_cast<size_t>(shape.head_dim * kMaxLaneRows));
  grow(k_tile_, static_cast<size_t>(kKeyTile) * hp);
  grow(k_transposed_, static_cast<size_t>(shape.head_dim * kKeyTile));
  grow(k_groups_, static_cast<size_t>(shape.head_dim * kKeyTile));
  grow(q_lane_groups_, static_cast<size_t>(shape.head_dim * kMaxLaneRows));  // [hd][16]
  grow(v_tile_, static_cast<size_t>(kKeyTile) * hp);
  grow(scores_, max_rows * static_cast<size_t>(kKeyTile));
  grow(acc_.m, max_rows);
  grow(acc_.l, max_rows);
  grow(acc_.o, max_rows * hp);
  bf16_ = shape.bf16_products && type == KvType::kF16 && bf16_attention_available();
  if (bf16_) {
    q_pairs_.resize(static_cast<size_t>(shape.head_dim / 2 * kMaxLaneRows));
    p_pairs_.resize(static_cast<size_t>(kKeyTile / 2 * kMaxLaneRows));
    k_bf16_.resize(static_cast<size_t>(kKeyTile * shape.head_dim));
  }
}

void TileWorker::load_queries(const QueryBlock& block) {
  rows_ = (block.q_end - block.q_begin) * group_;
  transposed_ = rows_ >= kTransposeMinRows;
  const int64_t hd = shape_.head_dim;
  lane_width_ = transposed_ ? 0 : lane_width(rows_, hd);
  if (lane_bf16() && lane_width_ == 4) lane_width_ = 8;  // the BF16 lane kernels take 8 or 16
  // Key groups and BF16 pairs start from the queries in lanes; 1-3-row row dots read q_tile_.
  const bool lane_queries = grouped_keys() || (lane_bf16() && lane_width_ > 0);
  if (lane_queries) std::fill_n(q_lanes_.begin(), hd * lane_width_, 0.0f);
  for (int64_t r = 0; r < rows_; ++r) {
    const int64_t query = block.q_begin + r / group_;
    const int64_t head = block.kv_head * group_ + r % group_;
    const float* src = q_ + (query * shape_.n_head + head) * hd;
    float* dst = q_tile_.data() + r * head_pad_;
    for (int64_t i = 0; i < hd; ++i) dst[i] = src[i] * shape_.scale;
    std::fill(dst + hd, dst + head_pad_, 0.0f);
    for (int64_t i = 0; i < hd && lane_queries; ++i) q_lanes_[i * lane_width_ + r] = dst[i];
  }
  if (grouped_keys()) lane_group_queries(lane_width_, q_lanes_.data(), hd, q_lane_groups_.data());
  if (lane_queries && lane_bf16())
    bf16_query_pairs(q_lanes_.data(), hd, lane_width_, q_pairs_.data());
  const int64_t live_rows = std::max(rows_, lane_width_);  // lane padding rows are computed too
  std::fill_n(acc_.m.begin(), live_rows, kNegInf);
  std::fill_n(acc_.l.begin(), live_rows, 0.0f);
  std::fill_n(acc_.o.begin(), live_rows * head_pad_, 0.0f);
}

void TileWorker::load_keys_values(const KeyRun& run, int64_t first_slot, int64_t n_keys_tile) {
  const int64_t hd = shape_.head_dim;
  for (int64_t j = 0; j < kKeyTile; ++j) {
    float* k_row = k_tile_.data() + j * head_pad_;
    float* v_row = v_tile_.data() + j * head_pad_;
    if (j < n_keys_tile) {
      const int64_t element = (first_slot + j) * hd;
      load_row(type_, row_address(type_, run.k, element, hd), hd, head_pad_, k_row);
      load_row(type_, row_address(type_, run.v, element, hd), hd, head_pad_, v_row);
    } else {
      std::fill_n(k_row, head_pad_, 0.0f);
      std::fill_n(v_row, head_pad_, 0.0f);
    }
  }
  if (!transposed_) return;
  int64_t i0 = 0;
#if defined(__AVX512F__)
  for (; i0 + 16 <= hd; i0 += 16) {
    for (int64_t j0 = 0; j0 < kKeyTile; j0 += 16) {
      transpose_16x16(k_tile_.data() + j0 * head_pad_ + i0, head_pad_,
                      k_transposed_.data() + i0 * kKeyTile + j0, kKeyTile);
    }
  }
#endif
  for (int64_t j = 0; j < kKeyTile; ++j) {
    for (int64_t i = i0; i < hd; ++i) k_transposed_[i * kKeyTile + j] = k_tile_[j * head_pad_ + i];
  }
}

void TileWorker::compute_scores(int64_t n_keys_tile) {
  if (transposed_) {
    int64_t r = 0;
    const float* kt = k_transposed_.data();
    for (; r + 4 <= rows_; r += 4) {
      scores_from_transposed<4>(q_tile_.data() + r * head_pad_, head_pad_, kt, shape_.head_dim,
                                scores_.data() + r * kKeyTile);
    }
    for (; r < rows_; ++r) {
      scores_from_transposed<1>(q_tile_.data() + r * head_pad_, head_pad_, kt, shape_.head_dim,
                                scores_.data() + r * kKeyTile);
    }
    return;
  }
  for (int64_t r = 0; r < rows_; ++r) {
    float* s = scores_.data() + r * kKeyTile;
    for (int64_t j = 0; j < n_keys_tile; ++j) {
      s[j] = dot_padded(q_tile_.data() + r * head_pad_, k_tile_.data() + j * head_pad_, head_pad_);
    }
  }
}

// Key slot j of the tile holds position first_pos + j; slots past n_keys_tile are padding.
void TileWorker::mask_scores(const QueryBlock& block, const BandMask& mask, int64_t first_pos,
                             int64_t n_keys_tile, int64_t row_stride, int64_t key_stride) {
  const int64_t last_pos = first_pos + kKeyTile - 1;
  for (int64_t query = block.q_begin; query < block.q_end; ++query) {
    const int64_t pos = q_pos0_ + query;
    const int64_t band_first = mask.span <= 0 ? pos + 1 : pos - mask.span + 1;
    const bool all_visible = n_keys_tile == kKeyTile && last_pos <= pos &&
                             (last_pos < mask.sinks || first_pos >= band_first);
    if (all_visible) continue;
    float* s = scores_.data() + (query - block.q_begin) * group_ * row_stride;
    for (int64_t j = 0; j < kKeyTile; ++j) {
      const int64_t key = first_pos + j;
      if (j < n_keys_tile && key <= pos && (key < mask.sinks || key >= band_first)) continue;
      for (int64_t h = 0; h < group_; ++h) s[h * row_stride + j * key_stride] = kNegInf;
    }
  }
}

bool TileWorker::softmax_row(int64_t r, float* correction) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  float* s = scores_.data() + r * kKeyTile;
  auto vmax = hn::Set(d, kNegInf);
  for (int64_t j = 0; j < kKeyTile; j += lanes) vmax = hn::Max(vmax, hn::LoadU(d, s + j));
  const float tile_max = hn::GetLane(hn::MaxOfLanes(d, vmax));
  if (tile_max == kNegInf) return false;  // nothing visible to this row in this tile
  const float m_old = acc_.m[static_cast<size_t>(r)];
  const float m_new = std::max(m_old, tile_max);
  *correction = m_old == kNegInf ? 0.0f : std::exp(m_old - m_new);
  const float tile_sum = exp_shifted_tile(s, m_new);
  acc_.m[static_cast<size_t>(r)] = m_new;
  acc_.l[static_cast<size_t>(r)] = acc_.l[static_cast<size_t>(r)] * *correction + tile_sum;
  return true;
}

void TileWorker::update_rows(int64_t n_keys_tile) {
  // Rows with visible keys are accumulated four at a time: 4 rows x 4 vectors of accumulators
  // let each value vector loaded serve 4 FMAs.
  constexpr int kBatch = 4;
  const float* p[kBatch];
  float* o[kBatch];
  float correction[kBatch];
  int pending = 0;
  using Accumulate =
      void (*)(const float* const*, const float*, int64_t, int64_t, const float*, float* const*);
  static constexpr Accumulate kAccumulate[kBatch + 1] = {
      nullptr, &accumulate_values<1>, &accumulate_values<2>, &accumulate_values<3>,
      &accumulate_values<4>};
  const auto flush = [&] {
    if (pending > 0) kAccumulate[pending](p, v_tile_.data(), n_keys_tile, head_pad_, correction, o);
    pending = 0;
  };
  for (int64_t r = 0; r < rows_; ++r) {
    if (!softmax_row(r, &correction[pending])) continue;
    p[pending] = scores_.data() + r * kKeyTile;
    o[pending] = acc_.o.data() + r * head_pad_;
    if (++pending == kBatch) flush();
  }
  flush();
}

void TileWorker::run_lane_tile(const KeyRun& run, const QueryBlock& block, const BandMask& mask,
                               int64_t first_slot, int64_t n_keys_tile, int64_t next_slot,
                               int64_t next_keys, bool streamed) {
  const int64_t hd = shape_.head_dim;  // a multiple of 16 here, so head_pad_ == hd
  // A tile's keys and values were requested during the tile before, a few lines per key of its
  // values pass (TilePrefetch); the first tile of a worker's stretch requests its values as a
  // whole once its keys are converted (values requested before competed with the key loads).
  const size_t tile_bytes = kv_bytes(type_, n_keys_tile * hd, hd);
  const auto* v_rows = static_cast<const char*>(row_address(type_, run.v, first_slot * hd, hd));
  const auto prefetch = [tile_bytes](const char* rows) {
    for (size_t b = 0; b < tile_bytes; b += 64) __builtin_prefetch(rows + b, 0, 2);
  };
  TilePrefetch next;
  if (next_keys > 0) {
    next.k = static_cast<const char*>(row_address(type_, run.k, next_slot * hd, hd));
    next.v = static_cast<const char*>(row_address(type_, run.v, next_slot * hd, hd));
    next.lines = static_cast<int64_t>((kv_bytes(type_, next_keys * hd, hd) + 63) / 64);
  }
  const void* k_src = row_address(type_, run.k, first_slot * hd, hd);
  const int64_t n_values = n_keys_tile * hd, tile_values = kKeyTile * hd;
  if (grouped_keys()) {
    lane_group_keys(lane_width_, type_, k_src, n_keys_tile, hd, k_groups_.data());
  } else if (lane_bf16()) {
    bf16_key_row(static_cast<const uint16_t*>(k_src), n_values, k_bf16_.data());
    std::fill(k_bf16_.data() + n_values, k_bf16_.data() + tile_values, uint16_t{0});
  }
  LaneBuffers buffers{scores_.data(), acc_.m.data(), acc_.l.data(),
                      acc_.o.data(),  head_pad_,     rows_};
  if (!lane_bf16()) {
    if (!streamed) prefetch(v_rows);
    const LaneTile tile{type_, v_rows, n_keys_tile, hd, next};
    if (grouped_keys()) {
      lane_tile_scores_grouped(lane_width_, hd, q_lane_groups_.data(), k_groups_.data(),
                               scores_.data(), next);
    } else {
      lane_tile_scores_rows(rows_, type_, k_src, n_keys_tile, hd, q_tile_.data(), head_pad_,
                            scores_.data(), next);
    }
    mask_scores(block, mask, run.key_pos0 + first_slot, n_keys_tile, 1, lane_width_);
    lane_tile_update(lane_width_, tile, buffers);
    return;
  }
  // BF16 products keep whole-tile requests: the values now, the next keys after the scores.
  prefetch(v_rows);
  const LaneTile tile{type_, v_rows, n_keys_tile, hd, {}};
  lane_tile_scores_bf16(lane_width_, hd, q_pairs_.data(), k_bf16_.data(), scores_.data());
  if (next.lines > 0) prefetch(next.k);
  mask_scores(block, mask, run.key_pos0 + first_slot, n_keys_tile, 1, lane_width_);
  float correction[kMaxLaneRows] = {};
  lane_tile_softmax(lane_width_, buffers, correction);
  lane_tile_values_bf16(lane_width_, tile, buffers, correction, p_pairs_.data());
}

void TileWorker::run(const QueryBlock& block, const BandMask& mask, std::span<const KeyRun> runs,
                     std::span<const RunTiles> tiles, int64_t t_begin, int64_t t_end) {
  load_queries(block);
  int64_t before = 0;  // tiles of the runs before `part`
  for (const RunTiles& part : tiles) {
    const int64_t count = part.tiles.count();
    const KeyRun& run = runs[static_cast<size_t>(part.run)];
    const int64_t t0 = std::max(t_begin, before), t1 = std::min(t_end, before + count);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t first_slot = part.tiles.tile(t - before) * kKeyTile;
      const int64_t n_keys_tile = std::min(kKeyTile, part.tiles.end_key - first_slot);
      if (lane_width_ > 0) {
        int64_t next_slot = 0, next_keys = 0;  // the tile after this one in the run, if any
        if (t + 1 < t1) {
          next_slot = part.tiles.tile(t + 1 - before) * kKeyTile;
          next_keys = std::min(kKeyTile, part.tiles.end_key - next_slot);
        }
        run_lane_tile(run, block, mask, first_slot, n_keys_tile, next_slot, next_keys, t > t0);
        continue;
      }
      load_keys_values(run, first_slot, n_keys_tile);
      compute_scores(n_keys_tile);
      mask_scores(block, mask, run.key_pos0 + first_slot, n_keys_tile, kKeyTile, 1);
      update_rows(n_keys_tile);
    }
    before += count;
  }
}

}  // namespace moa::kernels
