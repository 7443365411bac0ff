// Decode-shaped blocks (a few query rows: one position x the GQA group) with the rows in SIMD
// lanes. Q·K becomes one broadcast FMA per key element for all rows at once, and the online
// softmax runs elementwise across lanes, so there is no horizontal sum and no K transpose;
// values are widened straight from the cache and shared by every row. This keeps GQA decode
// attention near the FMA peak where per-row dot products spent most of their time reducing.
// Blocks of 4 or up to 8 rows score four or two keys per 16-float vector (key groups, below).
#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "hwy/highway.h"
#include "kernels/attention_tile.h"
#include "kernels/exp_vector.h"
#include "kernels/half.h"

namespace moa::kernels {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using DV = hn::CappedTag<float, 16>;  // value vectors: whole 16-float slices of a head
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Rows in lanes, and for tiles of 8 or 4 rows several keys per 16-float vector: kKeys = 16 / W
// keys (one for W = 16, pairs for W = 8, quads for W = 4). Key group g holds, for each position t,
// the values of keys kKeys g .. kKeys g + kKeys - 1 at dimension grouped_dim(t) side by side; the
// query lanes are repeated to match (lane kKeys h + e = row h), so one 64- or 128-bit broadcast
// feeds a 16-lane FMA that scores kKeys keys: no padding lanes and 1 / kKeys of the loads of one
// key per W-lane FMA. The dimension order is whatever per-128-bit-block interleaves produce; Q.K
// does not depend on it.
constexpr int64_t kVectorLanes = 16;
constexpr int64_t kGroupsPerPass = 8;  // score accumulators

// The dimension at position t of a key group (head_dim a multiple of 16): chunks of 16
// dimensions; pairs are the lower then upper interleave of two vectors, quads the four outputs of
// a 4 x 4 transpose within each 128-bit block.
template <int64_t kKeys>
int64_t grouped_dim(int64_t t) {
  if constexpr (kKeys == 1) return t;
  const int64_t chunk = t / 16, u = t % 16;
  if constexpr (kKeys == 2) return 16 * chunk + 4 * (u % 8 / 2) + 2 * (u / 8) + u % 2;
  return 16 * chunk + 4 * (u % 4) + u / 4;
}

// s[(kKeys g + e) * W + h] from acc lanes kKeys h + e.
template <int64_t kKeys>
hn::Vec<DV> grouped_lanes_to_keys(hn::Vec<DV> acc) {
  constexpr int64_t kWidth = kVectorLanes / kKeys;
  alignas(64) static constexpr auto kOrder = [] {
    std::array<int32_t, kVectorLanes> order{};
    for (int64_t i = 0; i < kVectorLanes; ++i)
      order[i] = static_cast<int32_t>(kKeys * (i % kWidth) + i / kWidth);
    return order;
  }();
  return hn::TableLookupLanes(acc, hn::SetTableIndices(DV(), kOrder.data()));
}

// The kKeys values at one position of a key group, repeated across a vector.
template <int64_t kKeys>
HWY_INLINE hn::Vec<DV> broadcast_keys(const float* values) {
  const DV d;
  if constexpr (kKeys == 1) {
    return hn::Set(d, *values);
  } else if constexpr (kKeys == 2) {
    uint64_t bits;
    std::memcpy(&bits, values, sizeof(bits));
    return hn::BitCast(d, hn::Set(hn::Repartition<uint64_t, DV>(), bits));
  } else {
    return hn::LoadDup128(d, values);
  }
}

// Keys' rows of W = Lanes(d) lanes in one DV vector: 1, 2 or 4.
template <class D>
int64_t keys_per_vector(D d) {
  return static_cast<int64_t>(hn::Lanes(DV()) / hn::Lanes(d));
}

// The W lanes of v (a DV vector holding one or more keys' rows) combined by `op`.
template <class D, class Op>
hn::Vec<D> fold_to_lanes(D d, hn::Vec<DV> v, Op op) {
  HWY_ALIGN float lanes[16] = {};
  hn::Store(v, DV(), lanes);
  auto folded = hn::Load(d, lanes);
  for (int64_t k = 1; k < keys_per_vector(d); ++k)
    folded = op(folded, hn::LoadU(d, lanes + k * hn::Lanes(d)));
  return folded;
}

// A W-lane vector repeated across a DV vector (one copy per key it holds).
template <class D>
hn::Vec<DV> repeat_lanes(D d, hn::Vec<D> v) {
  HWY_ALIGN float lanes[16] = {};
  for (int64_t k = 0; k < keys_per_vector(d); ++k) hn::StoreU(v, d, lanes + k * hn::Lanes(d));
  return hn::Load(DV(), lanes);
}

// Online-softmax step for every lane: scores become probabilities in place, m and l are
// updated; returns the per-lane factor the previous output must be scaled by. Scores are walked
// a whole DV vector at a time (two or four keys of an 8- or 4-lane tile): fewer instructions for
// the exponentials.
template <class D>
hn::Vec<D> lane_softmax(D d, float* s, float* m, float* l) {
  const auto width = static_cast<int64_t>(hn::Lanes(d));
  const DV dv;
  const auto neg_inf = hn::Set(dv, kNegInf);
  const auto step = static_cast<int64_t>(hn::Lanes(dv));
  auto wide_max = neg_inf;
  for (int64_t j = 0; j < kKeyTile * width; j += step)
    wide_max = hn::Max(wide_max, hn::LoadU(dv, s + j));
  const auto tile_max = fold_to_lanes(d, wide_max, [](auto a, auto b) { return hn::Max(a, b); });
  const auto m_old = hn::LoadU(d, m);
  const auto m_new = hn::Max(m_old, tile_max);
  // Lanes that have seen no key yet have nothing to rescale (and -inf - -inf is NaN).
  const auto correction = hn::IfThenZeroElse(hn::Eq(m_old, hn::Set(d, kNegInf)),
                                             exp_nonpositive(d, hn::Sub(m_old, m_new)));
  const auto wide_m = repeat_lanes(d, m_new);
  auto wide_sum = hn::Zero(dv);
  for (int64_t j = 0; j < kKeyTile * width; j += step) {
    const auto x = hn::LoadU(dv, s + j);
    const auto e = hn::IfThenZeroElse(hn::Eq(x, neg_inf), exp_nonpositive(dv, hn::Sub(x, wide_m)));
    hn::StoreU(e, dv, s + j);
    wide_sum = hn::Add(wide_sum, e);
  }
  const auto sum = fold_to_lanes(d, wide_sum, [](auto a, auto b) { return hn::Add(a, b); });
  hn::StoreU(m_new, d, m);
  hn::StoreU(hn::MulAdd(hn::LoadU(d, l), correction, sum), d, l);
  return correction;
}

uint16_t load_scale(const uint8_t* block) {
  uint16_t bits;
  std::memcpy(&bits, block, sizeof(bits));
  return bits;
}

// Where the kVectors slices of 16 values starting at element `first` lie in every stored row: a
// row's layout is the same for all keys, so this is worked out once per tile, not once per key.
template <int kVectors>
struct SliceLayout {
  size_t value_offset[kVectors] = {};  // bytes: F32/F16 values, Q8_0 int8 values
  size_t scale_offset[kVectors] = {};  // Q8_0: bytes to the block's F16 scale
};

template <KvType kType, int kVectors>
SliceLayout<kVectors> slice_layout(int64_t first, int64_t head_dim) {
  SliceLayout<kVectors> layout;
  constexpr int64_t kLanes = 16;
  // 16 values never straddle a Q8_0 block (blocks are 32 values, or a whole row of 16).
  const int64_t block = kv_block_elements(kType, head_dim);
  for (int v = 0; v < kVectors; ++v) {
    const int64_t i = first + v * kLanes;
    if constexpr (kType == KvType::kQ8_0) {  // the block's F16 scale, then its int8 values
      layout.scale_offset[v] = kv_bytes(kType, i - i % block, head_dim);
      layout.value_offset[v] = layout.scale_offset[v] + 2 + static_cast<size_t>(i % block);
    } else {
      layout.value_offset[v] = kv_bytes(kType, i, head_dim);
    }
  }
  return layout;
}

// Widens kVectors slices of 16 values of a stored K/V row to F32. Inlined into the per-key loop
// with the type fixed at compile time: as a call it spilled all 16 accumulators every key.
template <KvType kType, int kVectors>
HWY_INLINE void load_value_slices(const uint8_t* row, const SliceLayout<kVectors>& layout,
                                  hn::Vec<DV>* out) {
  const DV d;
  auto scale = hn::Zero(d);
  for (int v = 0; v < kVectors; ++v) {
    const uint8_t* values = row + layout.value_offset[v];
    if constexpr (kType == KvType::kF32) {
      out[v] = hn::LoadU(d, reinterpret_cast<const float*>(values));
    } else if constexpr (kType == KvType::kQ8_0) {
      const auto q = hn::PromoteTo(
          hn::Rebind<int32_t, DV>(),
          hn::LoadU(hn::Rebind<int8_t, DV>(), reinterpret_cast<const int8_t*>(values)));
      // Two slices of a 32-value block share its scale: convert it once.
      if (v == 0 || layout.scale_offset[v] != layout.scale_offset[v - 1])
        scale = hn::Set(d, half_to_float(load_scale(row + layout.scale_offset[v])));
      out[v] = hn::Mul(hn::ConvertTo(d, q), scale);
    } else {
      const hn::Rebind<hwy::float16_t, DV> dh;
      out[v] = hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(values)));
    }
  }
}

// One 16-dimension slice of a key group (row e's values in v[e]) stored in group order: 16 kKeys
// floats.
template <int64_t kKeys>
HWY_INLINE void store_key_group(const hn::Vec<DV>* v, float* dst) {
  const DV d;
  if constexpr (kKeys == 1) {
    hn::StoreU(v[0], d, dst);
#if HWY_TARGET != HWY_SCALAR  // one-lane vectors never take key groups (lane_width is 0 there)
  } else if constexpr (kKeys == 2) {
    hn::StoreU(hn::InterleaveLower(d, v[0], v[1]), d, dst);
    hn::StoreU(hn::InterleaveUpper(d, v[0], v[1]), d, dst + 16);
  } else {  // pairs of pairs: (a, b, c, d) of one dimension per 128-bit block
    const hn::Repartition<double, DV> dd;
    const auto ab_lower = hn::BitCast(dd, hn::InterleaveLower(d, v[0], v[1]));
    const auto ab_upper = hn::BitCast(dd, hn::InterleaveUpper(d, v[0], v[1]));
    const auto cd_lower = hn::BitCast(dd, hn::InterleaveLower(d, v[2], v[3]));
    const auto cd_upper = hn::BitCast(dd, hn::InterleaveUpper(d, v[2], v[3]));
    hn::StoreU(hn::BitCast(d, hn::InterleaveLower(dd, ab_lower, cd_lower)), d, dst);
    hn::StoreU(hn::BitCast(d, hn::InterleaveUpper(dd, ab_lower, cd_lower)), d, dst + 16);
    hn::StoreU(hn::BitCast(d, hn::InterleaveLower(dd, ab_upper, cd_upper)), d, dst + 32);
    hn::StoreU(hn::BitCast(d, hn::InterleaveUpper(dd, ab_upper, cd_upper)), d, dst + 48);
#endif
  }
}

// Dimensions [c, c + 16 kVectors) of the tile's key rows (n_keys of them, zeros after) widened
// into key groups, written in group order (strided writes aliased the reads).
template <KvType kType, int kVectors, int64_t kKeys>
void group_key_slices(const uint8_t* rows, size_t row_bytes, int64_t n_keys, int64_t head_dim,
                      int64_t c, float* k_groups) {
  const DV d;
  const SliceLayout<kVectors> layout = slice_layout<kType, kVectors>(c, head_dim);
  for (int64_t g = 0; g < kKeyTile / kKeys; ++g) {
    hn::Vec<DV> r[kKeys][kVectors];
    for (int64_t e = 0; e < kKeys; ++e) {
      for (int v = 0; v < kVectors; ++v) r[e][v] = hn::Zero(d);
      const int64_t key = kKeys * g + e;
      if (key < n_keys) load_value_slices<kType, kVectors>(rows + key * row_bytes, layout, r[e]);
    }
    float* dst = k_groups + kKeys * (g * head_dim + c);
    for (int v = 0; v < kVectors; ++v, dst += 16 * kKeys) {
      hn::Vec<DV> slice[kKeys];
      for (int64_t e = 0; e < kKeys; ++e) slice[e] = r[e][v];
      store_key_group<kKeys>(slice, dst);
    }
  }
}

// All of a tile's keys as groups: 64 dimensions at a time (the two slices of a Q8_0 block share
// one scale conversion), then 16.
template <KvType kType, int64_t kKeys>
void group_keys(const void* k, int64_t n_keys, int64_t head_dim, float* k_groups) {
  const size_t row_bytes = kv_bytes(kType, head_dim, head_dim);
  const auto* rows = static_cast<const uint8_t*>(k);
  int64_t c = 0;
  for (; c + 64 <= head_dim; c += 64)
    group_key_slices<kType, 4, kKeys>(rows, row_bytes, n_keys, head_dim, c, k_groups);
  for (; c < head_dim; c += 16)
    group_key_slices<kType, 1, kKeys>(rows, row_bytes, n_keys, head_dim, c, k_groups);
}

// f.template operator()<kType>() for a cache's KV type: the per-type kernels are compiled with
// the type fixed.
template <class F>
void with_kv_type(KvType type, F&& f) {
  switch (type) {
    case KvType::kF32:
      return f.template operator()<KvType::kF32>();
    case KvType::kQ8_0:
      return f.template operator()<KvType::kQ8_0>();
    default:
      return f.template operator()<KvType::kF16>();
  }
}

// f(d) with the lane tag of a width lane_width gives (4, 8 or 16).
template <class F>
void with_lane_tag(int64_t width, F&& f) {
  if (width == 4) return f(hn::CappedTag<float, 4>());
  if (width == 8) return f(hn::CappedTag<float, 8>());
  f(hn::CappedTag<float, 16>());
}

// f.template operator()<kKeys>() with the keys per vector of that width's key groups.
template <class F>
void with_keys_per_vector(int64_t width, F&& f) {
  if (width == 16) return f.template operator()<1>();
  if (width == 8) return f.template operator()<2>();
  f.template operator()<4>();
}

// Part of a TilePrefetch stream: `per_step` lines of `rows` per step of a loop, from line
// `first`; lines past `lines` are not requested.
struct PrefetchShare {
  const char* rows = nullptr;
  int64_t lines = 0;
  int64_t first = 0;
  int64_t per_step = 0;

  HWY_INLINE void request(int64_t step) const {
    for (int64_t i = 0; i < per_step; ++i) {
      const int64_t line = first + step * per_step + i;
      if (line < lines) __builtin_prefetch(rows + 64 * line, 0, 3);
    }
  }
};

// Lines per step to spread `lines` over `steps` steps.
int64_t lines_per_step(int64_t lines, int64_t steps) {
  return (lines + std::max<int64_t>(1, steps) - 1) / std::max<int64_t>(1, steps);
}

// s[j * W + h] = Q.K for the tile from grouped queries and keys; requests the next tile's keys
// (next.k) spread over its steps.
template <int64_t kKeys>
void grouped_scores(int64_t head_dim, const float* q_groups, const float* k_groups, float* s,
                    const TilePrefetch& next) {
  const DV d;
  const int64_t group_stride = kKeys * head_dim;
  constexpr int64_t kPasses = kKeyTile / kKeys / kGroupsPerPass;
  const int64_t per_step = lines_per_step(next.lines, kPasses * head_dim);
  for (int64_t g0 = 0; g0 < kKeyTile / kKeys; g0 += kGroupsPerPass) {
    hn::Vec<DV> acc[kGroupsPerPass];
    for (auto& a : acc) a = hn::Zero(d);
    const float* kg = k_groups + g0 * group_stride;
    const PrefetchShare share{next.k, next.lines, g0 / kGroupsPerPass * head_dim * per_step,
                              per_step};
    for (int64_t t = 0; t < head_dim; ++t) {
      share.request(t);
      const auto q = hn::LoadU(d, q_groups + t * kVectorLanes);
      for (int64_t g = 0; g < kGroupsPerPass; ++g)
        acc[g] = hn::MulAdd(broadcast_keys<kKeys>(kg + g * group_stride + kKeys * t), q, acc[g]);
    }
    for (int64_t g = 0; g < kGroupsPerPass; ++g) {
      if constexpr (kKeys > 1) acc[g] = grouped_lanes_to_keys<kKeys>(acc[g]);
      hn::StoreU(acc[g], d, s + (g0 + g) * kVectorLanes);
    }
  }
}

template <int64_t kKeys>
void group_queries(const float* q_lanes, int64_t head_dim, float* q_groups) {
  constexpr int64_t kWidth = kVectorLanes / kKeys;
  for (int64_t t = 0; t < head_dim; ++t) {
    const float* q = q_lanes + grouped_dim<kKeys>(t) * kWidth;
    for (int64_t h = 0; h < kWidth; ++h) {
      for (int64_t e = 0; e < kKeys; ++e) q_groups[t * kVectorLanes + kKeys * h + e] = q[h];
    }
  }
}

// Fewer than 4 rows: each score is a dot product of a stored key row with a query row (kRows
// accumulators per key, one horizontal sum each), where key groups would spend 4 / kRows
// products per useful one. s[j * 4 + r]; padding lanes and keys past the tile's end get 0. The
// next tile's keys are requested a share per key.
template <KvType kType, int64_t kRows>
void row_scores(const void* k, int64_t n_keys, int64_t head_dim, const float* q, int64_t q_stride,
                float* s, const TilePrefetch& next) {
  const DV d;
  const int64_t slices = head_dim / 16;  // <= kMaxRowDotHeadDim / 16 (lane_width)
  SliceLayout<1> layouts[kMaxRowDotHeadDim / 16];
  for (int64_t v = 0; v < slices; ++v) layouts[v] = slice_layout<kType, 1>(16 * v, head_dim);
  const size_t row_bytes = kv_bytes(kType, head_dim, head_dim);
  const PrefetchShare share{next.k, next.lines, 0, lines_per_step(next.lines, kKeyTile)};
  for (int64_t j = 0; j < kKeyTile; ++j) {
    share.request(j);
    float* sj = s + j * 4;
    std::fill_n(sj, 4, 0.0f);
    if (j >= n_keys) continue;
    const auto* row = static_cast<const uint8_t*>(k) + static_cast<size_t>(j) * row_bytes;
    hn::Vec<DV> acc[kRows];
    for (auto& a : acc) a = hn::Zero(d);
    for (int64_t v = 0; v < slices; ++v) {
      hn::Vec<DV> key[1];
      load_value_slices<kType, 1>(row, layouts[v], key);
      for (int64_t r = 0; r < kRows; ++r)
        acc[r] = hn::MulAdd(key[0], hn::LoadU(d, q + r * q_stride + 16 * v), acc[r]);
    }
    for (int64_t r = 0; r < kRows; ++r) sj[r] = hn::GetLane(hn::SumOfLanes(d, acc[r]));
  }
}

// o[r][c .. c + 16 kVectors) = o[r] * correction[r] + sum_j p[j * width + r] * v[j], for rows
// r0 .. r0 + kRows; value rows are read straight from the cache. kRows x kVectors = 16
// accumulators: half the register file, the rest holds values and weights.
template <KvType kType, int64_t kRows, int kVectors>
void lane_values_slice(const LaneTile& tile, const float* p, int64_t width, const float* correction,
                       int64_t r0, int64_t c, float* o, int64_t o_stride,
                       const PrefetchShare& share) {
  const DV d;
  hn::Vec<DV> acc[kRows][kVectors];
  for (int64_t r = 0; r < kRows; ++r) {
    const auto scale = hn::Set(d, correction[r0 + r]);
    for (int v = 0; v < kVectors; ++v)
      acc[r][v] = hn::Mul(hn::LoadU(d, o + (r0 + r) * o_stride + c + 16 * v), scale);
  }
  const size_t row_bytes = kv_bytes(kType, tile.head_dim, tile.head_dim);
  const SliceLayout<kVectors> layout = slice_layout<kType, kVectors>(c, tile.head_dim);
  const auto* row = static_cast<const uint8_t*>(tile.v);
  for (int64_t j = 0; j < tile.n_keys; ++j, row += row_bytes) {
    share.request(j);
    hn::Vec<DV> values[kVectors];
    load_value_slices<kType, kVectors>(row, layout, values);
    const float* pj = p + j * width + r0;
    for (int64_t r = 0; r < kRows; ++r) {
      const auto weight = hn::Set(d, pj[r]);
      for (int v = 0; v < kVectors; ++v) acc[r][v] = hn::MulAdd(weight, values[v], acc[r][v]);
    }
  }
  for (int64_t r = 0; r < kRows; ++r) {
    for (int v = 0; v < kVectors; ++v)
      hn::StoreU(acc[r][v], d, o + (r0 + r) * o_stride + c + 16 * v);
  }
}

// All value slices of rows r0 .. r0 + kRows: kVectors at a time, then single vectors. `pass`
// counts the values passes of the tile so far (each takes its share of the prefetch stream).
template <KvType kType, int64_t kRows, int kVectors>
void lane_values(const LaneTile& tile, const LaneBuffers& buffers, int64_t width,
                 const float* correction, int64_t r0, int64_t per_key, int64_t& pass) {
  const auto share = [&] {
    return PrefetchShare{tile.next.v, tile.next.lines, pass++ * tile.n_keys * per_key, per_key};
  };
  int64_t c = 0;
  for (; c + 16 * kVectors <= tile.head_dim; c += 16 * kVectors) {
    lane_values_slice<kType, kRows, kVectors>(tile, buffers.scores, width, correction, r0, c,
                                              buffers.o, buffers.o_stride, share());
  }
  for (; c < tile.head_dim; c += 16) {
    lane_values_slice<kType, kRows, 1>(tile, buffers.scores, width, correction, r0, c, buffers.o,
                                       buffers.o_stride, share());
  }
}

// Values passes lane_values makes over a tile: slices of 16 kVectors dimensions, then of 16.
template <int kVectors>
int64_t values_passes(int64_t head_dim) {
  return head_dim / (16 * kVectors) + head_dim % (16 * kVectors) / 16;
}

// Rows r0 .. r0 + kRows with kVectors-wide slices, after the `passes` their prefetch share
// is spread over.
template <KvType kType, int64_t kRows, int kVectors>
void lane_values_rows(const LaneTile& tile, const LaneBuffers& buffers, int64_t width,
                      const float* correction, int64_t passes) {
  const int64_t per_key = lines_per_step(tile.next.lines, passes * tile.n_keys);
  int64_t pass = 0;
  for (int64_t r0 = 0; r0 < buffers.rows; r0 += kRows)
    lane_values<kType, kRows, kVectors>(tile, buffers, width, correction, r0, per_key, pass);
}

// The values pass over the real rows only (fewer than 4 rows take the 4-lane tiles, whose
// padding rows it skips).
template <KvType kType>
void lane_values_all_rows(const LaneTile& tile, const LaneBuffers& buffers, int64_t width,
                          const float* correction) {
  const int64_t hd = tile.head_dim;
  switch (std::min<int64_t>(buffers.rows, 5)) {
    case 1:
      return lane_values_rows<kType, 1, 8>(tile, buffers, width, correction, values_passes<8>(hd));
    case 2:
      return lane_values_rows<kType, 2, 8>(tile, buffers, width, correction, values_passes<8>(hd));
    case 3:
      return lane_values_rows<kType, 3, 4>(tile, buffers, width, correction, values_passes<4>(hd));
    case 4:
      return lane_values_rows<kType, 4, 4>(tile, buffers, width, correction, values_passes<4>(hd));
    default:
      return lane_values_rows<kType, 8, 2>(tile, buffers, width, correction,
                                           (buffers.rows + 7) / 8 * values_passes<2>(hd));
  }
}

template <class D>
void lane_update(D d, const LaneTile& tile, LaneBuffers& buffers) {
  const auto width = static_cast<int64_t>(hn::Lanes(d));
  float correction[kMaxLaneRows] = {};  // only W lanes are stored; zeroed for narrow targets
  hn::StoreU(lane_softmax(d, buffers.scores, buffers.m, buffers.l), d, correction);
  with_kv_type(tile.type, [&]<KvType kType>() {
    lane_values_all_rows<kType>(tile, buffers, width, correction);
  });
}

}  // namespace

int64_t lane_width(int64_t rows, int64_t head_dim) {
  const int64_t narrow = static_cast<int64_t>(hn::Lanes(hn::CappedTag<float, 8>()));
  const int64_t wide = static_cast<int64_t>(hn::Lanes(DV()));
  if (narrow != 8 || wide != 16 || head_dim % 16 != 0 || rows < 1) return 0;
  if (rows < 4 && head_dim > kMaxRowDotHeadDim) return 0;
  if (rows <= 4) return 4;
  if (rows <= narrow) return narrow;
  return rows <= wide ? wide : 0;
}

void lane_tile_softmax(int64_t width, LaneBuffers& buffers, float* correction) {
  with_lane_tag(width, [&](auto d) {
    hn::StoreU(lane_softmax(d, buffers.scores, buffers.m, buffers.l), d, correction);
  });
}

void lane_tile_update(int64_t width, const LaneTile& tile, LaneBuffers& buffers) {
  with_lane_tag(width, [&](auto d) { lane_update(d, tile, buffers); });
}

void lane_group_queries(int64_t width, const float* q_lanes, int64_t head_dim, float* q_groups) {
  with_keys_per_vector(width,
                       [&]<int64_t kKeys>() { group_queries<kKeys>(q_lanes, head_dim, q_groups); });
}

void lane_group_keys(int64_t width, KvType type, const void* k, int64_t n_keys, int64_t head_dim,
                     float* k_groups) {
  with_keys_per_vector(width, [&]<int64_t kKeys>() {
    with_kv_type(type,
                 [&]<KvType kType>() { group_keys<kType, kKeys>(k, n_keys, head_dim, k_groups); });
  });
}

void lane_tile_scores_rows(int64_t rows, KvType type, const void* k, int64_t n_keys,
                           int64_t head_dim, const float* q, int64_t q_stride, float* scores,
                           const TilePrefetch& next) {
  with_kv_type(type, [&]<KvType kType>() {
    if (rows == 1) return row_scores<kType, 1>(k, n_keys, head_dim, q, q_stride, scores, next);
    if (rows == 2) return row_scores<kType, 2>(k, n_keys, head_dim, q, q_stride, scores, next);
    row_scores<kType, 3>(k, n_keys, head_dim, q, q_stride, scores, next);
  });
}

void lane_tile_scores_grouped(int64_t width, int64_t head_dim, const float* q_groups,
                              const float* k_groups, float* scores, const TilePrefetch& next) {
  with_keys_per_vector(width, [&]<int64_t kKeys>() {
    grouped_scores<kKeys>(head_dim, q_groups, k_groups, scores, next);
  });
}

}  // namespace moa::kernels
