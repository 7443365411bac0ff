// The static per-head ring cache: chunked prefill and every decode step against a full
// recomputation with the naive masked reference over the whole history (across the ring's
// wrap-around, chunks longer than a ring, mixed spans per head, G = 0, 4, 64, F32 and F16), ring
// sizing, every allocated byte against a dense cache at the same N, and the bad inputs it must
// reject.
#include "kv/static_kv_cache.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "gguf/quant.h"
#include "kernels/reference.h"
#include "kv/attention_method.h"
#include "kv/kv_cache.h"
#include "util/error.h"

namespace moa {
namespace {

using kernels::KvType;

constexpr int64_t kCacheHeadDim = 8;

SparsePlan plan_of(std::vector<std::vector<ElasticRule>> rules, int64_t sinks) {
  SparsePlan plan;
  plan.model = {"llama", static_cast<int64_t>(rules.size()),
                2 * static_cast<int64_t>(rules[0].size()), static_cast<int64_t>(rules[0].size()),
                ""};
  plan.sinks = sinks;
  plan.rules = std::move(rules);
  return plan;
}

KvShape shape_for(const SparsePlan& plan, int64_t n_ctx, KvType type) {
  return {plan.model.n_layer, plan.model.n_head_kv, kCacheHeadDim, n_ctx, 1, type};
}

std::vector<float> random_floats(std::mt19937& rng, int64_t n, float scale) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// Keys/values of every position so far, [kv_head][position][head_dim], as the cache stores them.
struct History {
  int64_t n_head_kv = 0, n_ctx = 0;
  KvType type = KvType::kF32;
  std::vector<float> k, v;
  std::vector<uint16_t> k16, v16;

  void append(int64_t pos, int64_t n, const std::vector<float>& kn, const std::vector<float>& vn) {
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t h = 0; h < n_head_kv; ++h) {
        for (int64_t d = 0; d < kCacheHeadDim; ++d) {
          const auto dst = static_cast<size_t>((h * n_ctx + pos + t) * kCacheHeadDim + d);
          const auto src = static_cast<size_t>((t * n_head_kv + h) * kCacheHeadDim + d);
          k[dst] = kn[src];
          v[dst] = vn[src];
          k16[dst] = gguf::fp32_to_fp16(kn[src]);
          v16[dst] = gguf::fp32_to_fp16(vn[src]);
        }
      }
    }
  }
  kernels::KvView view(int64_t n_keys) const {
    if (type == KvType::kF16) return {type, k16.data(), v16.data(), n_ctx * kCacheHeadDim, n_keys};
    return {type, k.data(), v.data(), n_ctx * kCacheHeadDim, n_keys};
  }
};

// Prefills `prompt` tokens in chunks, then decodes one token at a time to n_ctx; at every
// call and layer the cache's output must equal the reference over the whole history.
void expect_generation_matches_reference(const SparsePlan& plan, int64_t n_ctx, int64_t chunk,
                                         int64_t prompt, KvType type) {
  StaticKvCache cache(shape_for(plan, n_ctx, type), plan, chunk);
  const int64_t n_kv = plan.model.n_head_kv, n_head = plan.model.n_head;
  const kernels::AttentionShape shape{n_head, n_kv, kCacheHeadDim,
                                      1.0f / std::sqrt(float(kCacheHeadDim))};
  std::vector<History> history(static_cast<size_t>(plan.model.n_layer));
  for (History& h : history) {
    h = {n_kv, n_ctx, type, {}, {}, {}, {}};
    h.k.resize(static_cast<size_t>(n_kv * n_ctx * kCacheHeadDim));
    h.v.resize(h.k.size());
    h.k16.resize(h.k.size());
    h.v16.resize(h.k.size());
  }
  std::mt19937 rng(static_cast<uint32_t>(n_ctx + chunk + plan.sinks));
  double worst = 0.0;
  for (int64_t pos = 0; pos < n_ctx;) {
    const int64_t n = pos < prompt ? std::min(chunk, prompt - pos) : 1;
    for (int64_t layer = 0; layer < plan.model.n_layer; ++layer) {
      const auto q = random_floats(rng, n * n_head * kCacheHeadDim, 2.0f);
      const auto k = random_floats(rng, n * n_kv * kCacheHeadDim, 2.0f);
      const auto v = random_floats(rng, n * n_kv * kCacheHeadDim, 1.0f);
      std::vector<float> got(q.size()), want(q.size());
      cache.attend(layer, 0, pos, n, shape, q.data(), k.data(), v.data(), got.data(), 2);
      History& h = history[static_cast<size_t>(layer)];
      h.append(pos, n, k, v);
      kernels::reference::attention(shape, q.data(), n, pos, h.view(pos + n), cache.masks(layer),
                                    want.data());
      for (size_t i = 0; i < got.size(); ++i)
        worst = std::max(worst, double(std::abs(got[i] - want[i])));
    }
    pos += n;
    cache.set_length(0, pos);
  }
  EXPECT_LE(worst, 2e-5) << "sinks " << plan.sinks << " n_ctx " << n_ctx << " chunk " << chunk;
}

TEST(StaticKvCache, GenerationMatchesMaskedReferenceAcrossWrapAround) {
  // Spans 20/100/150 with rings of 128..256 slots wrap several times over 600 positions.
  const std::vector<std::vector<ElasticRule>> rules = {
      {{20, 0}, {0, 0.25}, {150, 0}},
      {{100, 0}, {10, 0.125}, {0, 1}},  // the last head is dense: its ring never wraps
  };
  for (int64_t sinks : {0, 4, 64}) {
    expect_generation_matches_reference(plan_of(rules, sinks), 600, 32, 150, KvType::kF32);
  }
  expect_generation_matches_reference(plan_of(rules, 4), 500, 64, 200, KvType::kF16);
}

TEST(StaticKvCache, ContextShorterThanSinksAndMinimumRingMatchReference) {
  // n_ctx 50 < 64 sinks: every key is a sink; and a span-1 head with a 128-slot ring.
  expect_generation_matches_reference(plan_of({{{1, 0}, {5, 0}}}, 64), 50, 16, 20, KvType::kF32);
  expect_generation_matches_reference(plan_of({{{1, 0}, {5, 0}}}, 0), 300, 7, 30, KvType::kF32);
}

TEST(StaticKvCache, RunsCoverSinksAndTheTwoRingPieces) {
  const SparsePlan plan = plan_of({{{100, 0}}}, 4);
  StaticKvCache cache(shape_for(plan, 1000, KvType::kF32), plan, 28);
  ASSERT_EQ(cache.ring_size(0, 0), 100);  // the span: nothing for the chunk
  // Query at 300: band 201..300 = ring slots (197..296) % 100 = 97..99, then 0..96.
  const auto runs = cache.key_runs(0, 0, 300, 301);
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].key_pos0, 0);
  EXPECT_EQ(runs[0].n_keys, 4);
  EXPECT_EQ(runs[1].key_pos0, 201);
  EXPECT_EQ(runs[1].n_keys, 3);
  EXPECT_EQ(runs[2].key_pos0, 204);
  EXPECT_EQ(runs[2].n_keys, 97);
  // Before a chunk at 300 is stored, only the keys up to 299 come from the cache.
  const auto before = cache.key_runs(0, 0, 300, 300);
  ASSERT_EQ(before.size(), 3u);
  EXPECT_EQ(before[2].n_keys, 96);
}

TEST(StaticKvCache, RingSizesFollowTheSpanAndContext) {
  EXPECT_EQ(ring_slots(10, 64, 100000), 10);
  EXPECT_EQ(ring_slots(1000, 64, 100000), 1000);
  EXPECT_EQ(ring_slots(16384, 64, 16384), 16320);  // never more than n_ctx - sinks
  EXPECT_EQ(ring_slots(5, 64, 50), 0);             // every position is a sink
}

TEST(StaticKvCache, BytesCountEverySlotTheChunkBufferAndTheBookkeeping) {
  const SparsePlan plan = plan_of({{{20, 0}, {100, 0}}}, 4);
  const StaticKvCache cache(shape_for(plan, 1000, KvType::kF16), plan, 32);
  const uint64_t row = kCacheHeadDim * 2;                   // one F16 key (or value)
  const uint64_t slots = 2 * ((4 + 20) + (4 + 100)) * row;  // keys and values of both heads
  const uint64_t chunk = 2 * 2 * 32 * row;                  // 32 tokens x 2 heads, keys and values
  EXPECT_GE(cache.bytes(), slots + chunk);
  EXPECT_LE(cache.bytes(), slots + chunk + 256);  // masks, ring sizes, offsets, lengths
}

// Dense KV cache bytes for the same N, layers, KV heads, head size and type (what a KvCache of
// that shape allocates; KvCache.F16StorageRoundsToHalfPrecision checks bytes_for against one).
double dense_bytes(const SparsePlan& plan, int64_t n) {
  return static_cast<double>(KvCache::bytes_for(
      KvShape{plan.model.n_layer, plan.model.n_head_kv, kCacheHeadDim, n, 1, KvType::kF16}));
}

// Every byte the cache allocates (slots, chunk buffer, bookkeeping) over a dense cache at N.
double bytes_ratio(const SparsePlan& plan, int64_t n, int64_t chunk) {
  const StaticKvCache cache(shape_for(plan, n, KvType::kF16), plan, chunk);
  return static_cast<double>(cache.bytes()) / dense_bytes(plan, n);
}

TEST(StaticKvCache, BytesFollowKvDensityAtEveryLength) {
  // A 32-layer model with 2 KV heads (the chunk buffer serves every layer: 256 / (32 N) of dense).
  const ModelIdentity model{"llama", 32, 4, 2, ""};
  for (int64_t n : {1024, 2048, 4096, 16384}) {
    for (double density : {0.25, 0.5}) {
      // StreamingLLM: 64 sinks + a window keep round(D x N) keys per head.
      const SparsePlan streaming =
          *method_plan({AttentionKind::kStreaming, "", density, 64}, model, n);
      // Mixed spans: the heads keep D/2 and 3D/2 of N, each with 64 sinks inside.
      SparsePlan mixed = streaming;
      for (auto& layer : mixed.rules) {
        const double betas[] = {density / 2, 1.5 * density};
        for (size_t h = 0; h < layer.size(); ++h) layer[h] = {-64.0, betas[h]};
      }
      for (const SparsePlan* plan : std::array<const SparsePlan*, 2>{&streaming, &mixed}) {
        EXPECT_NEAR(kv_density(*plan, n), density, 1.0 / static_cast<double>(n));
        const double ratio = bytes_ratio(*plan, n, kDefaultRingChunk);
        std::printf("N %5lld density %.2f %-9s KV bytes / dense %.4f\n", static_cast<long long>(n),
                    density, plan == &streaming ? "streaming" : "mixed", ratio);
        EXPECT_LE(ratio, density + 0.02) << "N " << n << " density " << density;
        EXPECT_GE(ratio, density - 0.01) << "N " << n << " density " << density;
      }
    }
  }
}

TEST(StaticKvCache, ShortGenerationsStaySmallerThanDense) {
  // The old rings (at least 128 slots plus a 256-token chunk per head) made a 47% plan at
  // N = 305 larger than dense; a chunk buffer sized to a short prompt keeps it at 47%.
  const SparsePlan plan =
      *method_plan({AttentionKind::kStreaming, "", 0.47, 4}, {"llama", 5, 8, 4, ""}, 305);
  EXPECT_LE(bytes_ratio(plan, 305, 8), 0.47 + 0.02);
}

TEST(StaticKvCache, RejectsPlansThatDoNotFit) {
  const SparsePlan plan = plan_of({{{16, 0}, {16, 0}}}, 4);
  KvShape shape = shape_for(plan, 100, KvType::kF32);
  shape.n_layer = 2;
  EXPECT_THROW(StaticKvCache(shape, plan, 8), Error);
  EXPECT_THROW(StaticKvCache(shape_for(plan, 100, KvType::kF32), plan, 0), Error);  // no chunk
  const SparsePlan negative = plan_of({{{-500, 0.0}, {16, 0}}}, 4);
  EXPECT_THROW(StaticKvCache(shape_for(negative, 100, KvType::kF32), negative, 8), Error);
}

TEST(StaticKvCache, RejectsChunksLargerThanPlannedAndFullContexts) {
  const SparsePlan plan = plan_of({{{16, 0}}}, 4);
  StaticKvCache cache(shape_for(plan, 100, KvType::kF32), plan, 8);
  const std::vector<float> kv(20 * kCacheHeadDim);
  EXPECT_THROW(cache.store(0, 0, 0, 9, kv.data(), kv.data()), Error);
  EXPECT_THROW(cache.store(0, 0, -1, 1, kv.data(), kv.data()), Error);
  EXPECT_THROW(cache.store(0, 0, 95, 8, kv.data(), kv.data()), Error);
  cache.set_length(0, 96);
  EXPECT_THROW(cache.check_room(0, 5), Error);
  EXPECT_NO_THROW(cache.check_room(0, 4));
  EXPECT_THROW(cache.length(1), Error);
}

}  // namespace
}  // namespace moa
