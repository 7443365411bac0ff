// Flash attention against the full-softmax reference over GQA groups, head sizes, F32, F16
// and Q8_0 caches, chunked and single-token queries, and band masks including their edge cases.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "gguf/quant.h"
#include "kernels/kernels.h"
#include "kernels/random_data.h"
#include "kernels/reference.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

using testing::max_abs_diff;
using testing::random_floats;

using Case = testing::AttentionCase;

// A KV cache with some spare capacity per head (head_stride > n_keys * head_dim).
struct Cache {
  std::vector<float> k32, v32;
  std::vector<uint16_t> k16, v16;
  std::vector<uint8_t> k8, v8;
  KvView view;
};

Cache make_cache(const Case& c) {
  Cache cache;
  const int64_t capacity = c.n_keys + 3;
  const int64_t n = c.n_head_kv * capacity * c.head_dim;
  cache.k32 = random_floats(n, 21, 2.0f);
  cache.v32 = random_floats(n, 22);
  cache.view = {c.kv_type, nullptr, nullptr, capacity * c.head_dim, c.n_keys};
  if (c.kv_type == KvType::kF16) {
    for (float f : cache.k32) cache.k16.push_back(gguf::fp32_to_fp16(f));
    for (float f : cache.v32) cache.v16.push_back(gguf::fp32_to_fp16(f));
    cache.view.k = cache.k16.data();
    cache.view.v = cache.v16.data();
  } else if (c.kv_type == KvType::kQ8_0) {
    const size_t row = kv_bytes(KvType::kQ8_0, c.head_dim, c.head_dim);
    cache.k8.resize(kv_bytes(KvType::kQ8_0, n, c.head_dim));
    cache.v8.resize(cache.k8.size());
    for (int64_t r = 0; r < n / c.head_dim; ++r) {
      quantize_kv_row_q8_0(cache.k32.data() + r * c.head_dim, c.head_dim,
                           cache.k8.data() + r * row);
      quantize_kv_row_q8_0(cache.v32.data() + r * c.head_dim, c.head_dim,
                           cache.v8.data() + r * row);
    }
    cache.view.k = cache.k8.data();
    cache.view.v = cache.v8.data();
  } else {
    cache.view.k = cache.k32.data();
    cache.view.v = cache.v32.data();
  }
  return cache;
}

void expect_matches_reference(const Case& c) {
  const AttentionShape shape{c.n_head, c.n_head_kv, c.head_dim,
                             1.0f / std::sqrt(static_cast<float>(c.head_dim))};
  const Cache cache = make_cache(c);
  const auto q = random_floats(c.n_query * c.n_head * c.head_dim, 23, 2.0f);
  std::vector<float> got(q.size(), 123.0f), want(q.size());
  attention(shape, q.data(), c.n_query, c.q_pos0, cache.view, c.masks, got.data(), c.threads);
  reference::attention(shape, q.data(), c.n_query, c.q_pos0, cache.view, c.masks, want.data());
  EXPECT_LE(max_abs_diff(got, want), 2e-5)
      << "heads " << c.n_head << "/" << c.n_head_kv << " dim " << c.head_dim << " queries "
      << c.n_query << " from " << c.q_pos0 << " keys " << c.n_keys << " threads " << c.threads;
}

std::vector<BandMask> same_mask(int64_t n_head_kv, BandMask m) {
  return std::vector<BandMask>(static_cast<size_t>(n_head_kv), m);
}

TEST(Attention, DensePrefillMatchesReferenceAcrossGroupsAndHeadSizes) {
  for (int64_t group : {1, 2, 4, 8}) {
    for (int64_t head_dim : {4, 8, 64, 128}) {
      expect_matches_reference({2 * group, 2, head_dim, 77, 0, 77, {}});
    }
  }
}

TEST(Attention, SingleQueryDecodeMatchesReference) {
  for (int64_t n_keys : {1, 63, 64, 65, 1000, 3001}) {
    for (int threads : {1, 2}) {
      Case c{8, 2, 64, 1, n_keys - 1, n_keys, {}};
      c.threads = threads;
      expect_matches_reference(c);
    }
  }
}

// Blocks of 1..16 rows (decode of a GQA group, or a few queries) take the rows-in-lanes path:
// 4, 8 and 16 lanes, padding lanes, 1-3 rows scored as row dot products, value passes of 1, 2,
// 3, 4 and 8 rows, head sizes that leave a single 16-wide slice, masks with sinks and bands, F32
// and F16, one and two threads.
TEST(Attention, FewRowBlocksInLanesMatchReference) {
  struct Rows {
    int64_t group, n_query;
  };
  const Rows shapes[] = {{1, 1}, {2, 1}, {3, 1},  {1, 2},  {1, 3}, {4, 1}, {5, 1},
                         {8, 1}, {6, 2}, {12, 1}, {16, 1}, {4, 3}, {1, 5}, {8, 2}};
  const std::vector<BandMask> masks[] = {{}, same_mask(2, {4, 100}), {{64, 70}, {0, 1}}};
  for (const Rows& r : shapes) {
    for (int64_t head_dim : {16, 48, 80, 128}) {
      for (const auto& m : masks) {
        for (KvType type : {KvType::kF32, KvType::kF16}) {
          Case c{2 * r.group, 2, head_dim, r.n_query, 1001 - r.n_query, 1001, m, type};
          c.threads = head_dim == 80 ? 1 : 2;
          expect_matches_reference(c);
        }
      }
    }
  }
}

TEST(Attention, OneRowBlocksOfEveryHeadSizeMatchReference) {
  // 256: the largest the lanes row dots take; 272 goes back to the row-by-row tiles.
  for (int64_t head_dim : {8, 256, 272}) {
    for (KvType type : {KvType::kF32, KvType::kF16, KvType::kQ8_0}) {
      if (type == KvType::kQ8_0 && head_dim % 32 != 0 && 32 % head_dim != 0) continue;
      expect_matches_reference({2, 2, head_dim, 1, 299, 300, same_mask(2, {4, 100}), type});
    }
  }
}

TEST(Attention, SplitKeyDecodeOnOneKvHeadMatchesReference) {
  // One KV head and one query: the planner must split the keys across tasks and merge.
  expect_matches_reference({4, 1, 128, 1, 4999, 5000, {}});
  expect_matches_reference({1, 1, 64, 2, 2998, 3000, same_mask(1, {4, 700})});
}

TEST(Attention, ChunkedQueriesAfterACachedPrefixMatchReference) {
  expect_matches_reference({4, 2, 64, 37, 100, 137, {}});
  expect_matches_reference({4, 4, 8, 130, 70, 200, {}});
  // Keys beyond the cache's valid length are never read.
  expect_matches_reference({2, 1, 16, 10, 50, 55, {}});
}

TEST(Attention, F16CacheMatchesReference) {
  Case prefill{8, 2, 64, 100, 0, 100, {}, KvType::kF16};
  expect_matches_reference(prefill);
  Case decode{8, 2, 128, 1, 700, 701, same_mask(2, {4, 128}), KvType::kF16};
  expect_matches_reference(decode);
  Case odd{2, 1, 4, 5, 9, 14, {}, KvType::kF16};
  expect_matches_reference(odd);
}

// Q8_0 keys/values (the reference decodes the same blocks): prefill tiles via K^T, decode rows
// in lanes (groups 4, 5 and 8 with 8 and 16 lanes) and per-row dots (group 1), split keys, band
// masks, and head sizes of one whole-row block (8, 16).
TEST(Attention, Q8_0CacheMatchesReference) {
  for (int64_t head_dim : {8, 16, 64, 128}) {
    expect_matches_reference({8, 2, head_dim, 70, 0, 70, {}, KvType::kQ8_0});
    for (int64_t group : {1, 2, 3, 4, 5, 8}) {
      expect_matches_reference(
          {2 * group, 2, head_dim, 1, 600, 601, same_mask(2, {4, 200}), KvType::kQ8_0});
    }
  }
  expect_matches_reference({24, 2, 64, 1, 300, 301, {}, KvType::kQ8_0});
  expect_matches_reference({4, 1, 64, 1, 3999, 4000, {}, KvType::kQ8_0});
  expect_matches_reference({4, 2, 32, 37, 100, 137, {{16, 40}, {0, 5}}, KvType::kQ8_0});
}

TEST(Attention, BandMasksMatchReference) {
  const int64_t n = 300;
  const std::vector<BandMask> masks[] = {
      same_mask(4, {0, 1}),                           // each query sees only itself
      same_mask(4, {10, 3}),                          // span smaller than sinks
      same_mask(4, {4, 64}),                          // span exactly one tile
      same_mask(4, {0, 1000}),                        // span beyond N: dense
      same_mask(4, {500, 16}),                        // N below sinks: dense
      {{4, 16}, {0, 65}, {64, 100}, {1, INT64_MAX}},  // different per KV head
  };
  for (const auto& m : masks) {
    expect_matches_reference({8, 4, 32, n, 0, n, m});
    expect_matches_reference({8, 4, 32, 1, n - 1, n, m});
    expect_matches_reference({8, 4, 32, 45, n - 45, n, m});
  }
}

TEST(Attention, QueriesWithNoVisibleKeyGetZeros) {
  const std::vector<BandMask> none = same_mask(1, {0, 0});
  const AttentionShape shape{2, 1, 8, 0.5f};
  const auto q = random_floats(3 * 2 * 8, 1);
  const auto kv = random_floats(10 * 8, 2);
  std::vector<float> out(q.size(), 7.0f);
  attention(shape, q.data(), 3, 5, {KvType::kF32, kv.data(), kv.data(), 80, 10}, none, out.data(),
            2);
  for (float v : out) EXPECT_EQ(v, 0.0f);
}

TEST(Attention, LaneRowsWithNoVisibleKeyGetZeros) {
  const std::vector<BandMask> none = same_mask(1, {0, 0});
  for (int64_t group : {8, 1}) {  // a GQA group of 8 in lanes; one row scored by row dots
    const AttentionShape shape{group, 1, 16, 0.5f};
    const auto q = random_floats(group * 16, 1);
    const auto kv = random_floats(200 * 16, 2);
    std::vector<float> out(q.size(), 7.0f);
    attention(shape, q.data(), 1, 150, {KvType::kF32, kv.data(), kv.data(), 3200, 200}, none,
              out.data(), 2);
    for (float v : out) EXPECT_EQ(v, 0.0f);
  }
}

TEST(Attention, WeightsValuesBySoftmaxOfScores) {
  // Two keys, one query at position 1: weights softmax(q.k * scale) over both keys.
  const AttentionShape shape{1, 1, 2, 1.0f};
  const std::vector<float> q = {1, 0}, k = {0, 0, 2, 0}, v = {1, 0, 0, 1};
  std::vector<float> out(2);
  attention(shape, q.data(), 1, 1, {KvType::kF32, k.data(), v.data(), 4, 2}, {}, out.data(), 1);
  const float w1 = std::exp(2.0f) / (1.0f + std::exp(2.0f));
  EXPECT_NEAR(out[0], 1.0f - w1, 1e-6);
  EXPECT_NEAR(out[1], w1, 1e-6);
}

TEST(Attention, RejectsMaskCountThatIsNotOnePerKvHead) {
  const std::vector<BandMask> masks(3);
  const std::vector<float> buf(64);
  std::vector<float> out(64);
  EXPECT_THROW(attention({4, 2, 8, 1.0f}, buf.data(), 1, 0,
                         {KvType::kF32, buf.data(), buf.data(), 8, 1}, masks, out.data(), 1),
               Error);
}

}  // namespace
}  // namespace moa::kernels
