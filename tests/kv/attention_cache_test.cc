// The operations every cache offers behind AttentionCache beyond attend: fill (a sequence at any
// depth without a prefill) and rewind. A decode step after fill must equal the naive masked
// reference over the filled history (dense: every key; a plan's rings: its bands; H2O: the
// newest budget keys and the new one), and the K/V row store they share is checked against
// plain copies and the F16 rounding; Q8_0 caches decode like the reference over their blocks.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "gguf/quant.h"
#include "kernels/reference.h"
#include "kv/attention_cache.h"
#include "kv/h2o_kv_cache.h"
#include "kv/kv_cache.h"
#include "kv/kv_shape.h"
#include "kv/plan_masks.h"
#include "kv/static_kv_cache.h"
#include "util/error.h"

namespace moa {
namespace {

constexpr int64_t kHeadDim = 8, kHeadsKv = 2, kHeads = 4, kLayers = 2, kCtx = 64;

KvShape two_seq_shape(kernels::KvType type) { return {kLayers, kHeadsKv, kHeadDim, kCtx, 2, type}; }

std::vector<float> random_floats(std::mt19937& rng, int64_t n) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

SparsePlan mixed_plan() {
  SparsePlan plan;
  plan.model = {"llama", kLayers, kHeads, kHeadsKv, ""};
  plan.sinks = 4;
  plan.rules = {{{10, 0}, {0, 1}}, {{3, 0.25}, {20, 0}}};
  return plan;
}

// One K/V row of kHeadDim values as the cache gives it back: F16 or Q8_0 rounding (a Q8_0 row
// of 8 values is one block, decoded here straight from the bytes), F32 unchanged.
void stored_row(kernels::KvType type, const float* x, float* out) {
  if (type == kernels::KvType::kQ8_0) {
    std::vector<uint8_t> bytes(kernels::kv_bytes(type, kHeadDim, kHeadDim));
    kernels::quantize_kv_row_q8_0(x, kHeadDim, bytes.data());
    for (int64_t d = 0; d < kHeadDim; ++d)
      out[d] = static_cast<float>(kernels::reference::q8_0_kv_value(bytes.data(), d, kHeadDim));
    return;
  }
  for (int64_t d = 0; d < kHeadDim; ++d) {
    out[d] = type == kernels::KvType::kF16 ? gguf::fp16_to_fp32(gguf::fp32_to_fp16(x[d])) : x[d];
  }
}

// Fills sequence 1 to `depth` from n_rows rows, decodes one token at `depth` in every layer
// and compares with the reference over positions 0..depth (position p holding row p % n_rows)
// under `masks` (one per layer; empty: dense).
void expect_fill_then_decode_matches(AttentionCache& cache, kernels::KvType type, int64_t depth,
                                     const std::vector<std::vector<kernels::BandMask>>& masks) {
  constexpr int64_t kRows = 5;
  const int64_t kv_dim = kHeadsKv * kHeadDim;
  std::mt19937 rng(static_cast<uint32_t>(depth));
  const std::vector<float> rows_k = random_floats(rng, kRows * kv_dim);
  const std::vector<float> rows_v = random_floats(rng, kRows * kv_dim);
  cache.fill(1, depth, rows_k, rows_v);
  ASSERT_EQ(cache.length(1), depth);
  EXPECT_EQ(cache.length(0), 0);
  const kernels::AttentionShape shape{kHeads, kHeadsKv, kHeadDim,
                                      1.0f / std::sqrt(static_cast<float>(kHeadDim))};
  for (int64_t layer = 0; layer < kLayers; ++layer) {
    const std::vector<float> q = random_floats(rng, kHeads * kHeadDim);
    const std::vector<float> k = random_floats(rng, kv_dim), v = random_floats(rng, kv_dim);
    std::vector<float> got(q.size()), want(q.size());
    cache.attend(layer, 1, depth, 1, shape, q.data(), k.data(), v.data(), got.data(), 1);
    // The history as the cache stores it: [kv_head][position][head_dim], rounded like the cache.
    std::vector<float> hist_k(static_cast<size_t>(kHeadsKv * (depth + 1) * kHeadDim));
    std::vector<float> hist_v(hist_k.size());
    for (int64_t p = 0; p <= depth; ++p) {
      const float* src_k = p < depth ? rows_k.data() + (p % kRows) * kv_dim : k.data();
      const float* src_v = p < depth ? rows_v.data() + (p % kRows) * kv_dim : v.data();
      for (int64_t h = 0; h < kHeadsKv; ++h) {
        const auto at = static_cast<size_t>((h * (depth + 1) + p) * kHeadDim);
        stored_row(type, src_k + h * kHeadDim, hist_k.data() + at);
        stored_row(type, src_v + h * kHeadDim, hist_v.data() + at);
      }
    }
    const kernels::KvView view{kernels::KvType::kF32, hist_k.data(), hist_v.data(),
                               (depth + 1) * kHeadDim, depth + 1};
    kernels::reference::attention(
        shape, q.data(), 1, depth, view,
        masks.empty() ? std::span<const kernels::BandMask>() : masks[static_cast<size_t>(layer)],
        want.data());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 2e-5) << i;
  }
}

TEST(AttentionCache, FilledDenseCacheDecodesLikeTheReference) {
  for (kernels::KvType type :
       {kernels::KvType::kF32, kernels::KvType::kF16, kernels::KvType::kQ8_0}) {
    KvCache cache(two_seq_shape(type));
    expect_fill_then_decode_matches(cache, type, 37, {});
  }
}

TEST(AttentionCache, FilledRingCacheDecodesLikeTheMaskedReference) {
  const SparsePlan plan = mixed_plan();
  std::vector<std::vector<kernels::BandMask>> masks;
  for (int64_t layer = 0; layer < kLayers; ++layer) masks.push_back(band_masks(plan, layer, kCtx));
  // A chunk of 3 (< the 5 rows) splits the fill at both the chunk and the row cycle.
  for (int64_t depth : {2, 50}) {
    for (kernels::KvType type : {kernels::KvType::kF16, kernels::KvType::kQ8_0}) {
      StaticKvCache cache(two_seq_shape(type), plan, 3);
      expect_fill_then_decode_matches(cache, type, depth, masks);
    }
  }
}

TEST(AttentionCache, FilledH2oCacheKeepsTheNewestBudgetKeys) {
  constexpr int64_t kBudget = 12;
  // Scores are zero after fill, so the step attends the newest 12 filled keys and the new one.
  const std::vector<kernels::BandMask> band(kHeadsKv, kernels::BandMask{0, kBudget + 1});
  for (kernels::KvType type : {kernels::KvType::kF32, kernels::KvType::kQ8_0}) {
    H2oKvCache cache(two_seq_shape(type), kBudget);
    expect_fill_then_decode_matches(cache, type, 40, {band, band});
  }
}

TEST(AttentionCache, DenseAndRingCachesRewindH2oRefuses) {
  const std::vector<float> rows(static_cast<size_t>(kHeadsKv * kHeadDim), 0.5f);
  KvCache dense(two_seq_shape(kernels::KvType::kF32));
  StaticKvCache rings(two_seq_shape(kernels::KvType::kF32), mixed_plan(), 8);
  H2oKvCache h2o(two_seq_shape(kernels::KvType::kF32), 8);
  for (AttentionCache* cache : std::vector<AttentionCache*>{&dense, &rings, &h2o}) {
    cache->fill(0, 30, rows, rows);
  }
  EXPECT_TRUE(dense.rewind(0, 10));
  EXPECT_TRUE(rings.rewind(0, 10));
  EXPECT_FALSE(h2o.rewind(0, 10));
  EXPECT_EQ(dense.length(0), 10);
  EXPECT_EQ(rings.length(0), 10);
  EXPECT_EQ(h2o.length(0), 30);
  EXPECT_TRUE(h2o.rewind(0, 0));
  EXPECT_EQ(h2o.length(0), 0);
}

TEST(AttentionCache, FillRejectsBadRowsAndLengths) {
  KvCache cache(two_seq_shape(kernels::KvType::kF32));
  const std::vector<float> rows(static_cast<size_t>(3 * kHeadsKv * kHeadDim), 1.0f);
  EXPECT_THROW(cache.fill(0, kCtx + 1, rows, rows), Error);
  EXPECT_THROW(cache.fill(0, -1, rows, rows), Error);
  EXPECT_THROW(cache.fill(0, 4, {}, {}), Error);
  EXPECT_THROW(cache.fill(0, 4, std::span(rows).first(7), std::span(rows).first(7)), Error);
  EXPECT_THROW(cache.fill(0, 4, rows, std::span(rows).first(16)), Error);
  EXPECT_THROW(cache.fill(2, 4, rows, rows), Error);
  cache.fill(0, kCtx, rows, rows);
  EXPECT_EQ(cache.length(0), kCtx);
}

TEST(KvRowStore, CopiesStridedRowsAndRoundsToHalf) {
  // Two heads of three tokens; store head 1 (every other head_dim floats).
  std::vector<float> src(static_cast<size_t>(3 * 2 * 4));
  for (size_t i = 0; i < src.size(); ++i) src[i] = 0.1f * static_cast<float>(i) - 1.0f;
  std::vector<float> f32(12);
  store_kv_rows(src.data() + 4, 8, 3, 4, kernels::KvType::kF32, f32.data());
  std::vector<uint16_t> f16(12);
  store_kv_rows(src.data() + 4, 8, 3, 4, kernels::KvType::kF16, f16.data());
  for (int64_t t = 0; t < 3; ++t) {
    for (int64_t d = 0; d < 4; ++d) {
      const float want = src[static_cast<size_t>(t * 8 + 4 + d)];
      EXPECT_EQ(f32[static_cast<size_t>(t * 4 + d)], want);
      EXPECT_EQ(f16[static_cast<size_t>(t * 4 + d)], gguf::fp32_to_fp16(want));
    }
  }
}

TEST(KvShape, RejectsEmptyDimensions) {
  KvShape ok = two_seq_shape(kernels::KvType::kF32);
  EXPECT_NO_THROW(check_kv_shape("test", ok));
  for (int field = 0; field < 5; ++field) {
    KvShape bad = ok;
    if (field == 0) bad.n_layer = 0;
    if (field == 1) bad.n_head_kv = -1;
    if (field == 2) bad.head_dim = 0;
    if (field == 3) bad.n_ctx = 0;
    if (field == 4) bad.n_seq = 0;
    EXPECT_THROW(check_kv_shape("test", bad), Error) << field;
  }
}

}  // namespace
}  // namespace moa
