// Attention through the KV caches at 16K context, dense (KvCache) against StreamingLLM-style
// plans (64 sinks + a window keeping density x N keys on every head) in the static ring cache
// (StaticKvCache): one decode step, one 256-token prefill chunk at the end of the context, and
// a whole 16K prefill in 256-token chunks (fewer heads, so it finishes in seconds). Llama-3-8B
// layer shape (32 query heads, 8 KV heads, head_dim 128), F16 cache, all cores. Counters:
// kv_bytes of the layer's cache, kv_ratio against dense.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "bench_support.h"
#include "kv/kv_cache.h"
#include "kv/static_kv_cache.h"
#include "plan/plan.h"

namespace moa {
namespace {

constexpr int64_t kContext = 16384;
constexpr int64_t kChunk = kDefaultRingChunk;

using bench::random_floats;

// One layer's cache: dense for density 100, else a uniform plan's rings.
std::unique_ptr<AttentionCache> layer_cache(int64_t n_head, int64_t n_head_kv, int64_t density) {
  const ModelIdentity id{"llama", 1, n_head, n_head_kv, ""};
  if (density == 100) {
    return std::make_unique<KvCache>(
        KvCacheShape{1, n_head_kv, 128, kContext, 1, kernels::KvType::kF16});
  }
  const SparsePlan plan = uniform_plan(id, kContext * density / 100 - kDefaultSinks, kDefaultSinks);
  return std::make_unique<StaticKvCache>(
      StaticKvCacheShape{1, n_head_kv, 128, kContext, kChunk, 1, kernels::KvType::kF16}, plan);
}

double dense_bytes(int64_t n_head_kv) {
  return static_cast<double>(
      KvCache::bytes_for({1, n_head_kv, 128, kContext, 1, kernels::KvType::kF16}));
}

// Writes random keys/values for positions [0, length) (timing does not depend on them).
void fill(AttentionCache& cache, int64_t n_head_kv, int64_t length) {
  const auto kv = random_floats(kChunk * n_head_kv * 128, 1);
  for (int64_t pos = 0; pos < length; pos += kChunk) {
    const int64_t n = std::min(kChunk, length - pos);
    if (auto* dense = dynamic_cast<KvCache*>(&cache)) {
      dense->store(0, 0, pos, n, kv.data(), kv.data());
    } else {
      static_cast<StaticKvCache&>(cache).store(0, 0, pos, n, kv.data(), kv.data());
    }
  }
  cache.set_length(0, length);
}

void report(benchmark::State& state, const AttentionCache& cache, int64_t n_head_kv) {
  state.counters["kv_bytes"] = static_cast<double>(cache.bytes());
  state.counters["kv_ratio"] = static_cast<double>(cache.bytes()) / dense_bytes(n_head_kv);
}

// Args: density percent, queries (1: decode, 256: the last prefill chunk).
void BM_AttentionAt16K(benchmark::State& state) {
  const int64_t density = state.range(0), n_query = state.range(1);
  const int64_t n_head = 32, n_head_kv = 8;
  auto cache = layer_cache(n_head, n_head_kv, density);
  const int64_t pos = kContext - n_query;
  fill(*cache, n_head_kv, pos);
  const kernels::AttentionShape shape{n_head, n_head_kv, 128, 1.0f / std::sqrt(128.0f)};
  const auto q = random_floats(n_query * n_head * 128, 3);
  const auto kv = random_floats(n_query * n_head_kv * 128, 4);
  std::vector<float> out(q.size());
  for (auto _ : state) {
    cache->attend(0, 0, pos, n_query, shape, q.data(), kv.data(), kv.data(), out.data(),
                  omp_get_max_threads());
    benchmark::DoNotOptimize(out.data());
  }
  report(state, *cache, n_head_kv);
}
BENCHMARK(BM_AttentionAt16K)
    ->ArgsProduct({{100, 50, 25}, {1, kChunk}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// One decode step through every layer of a TinyLlama-1.1B-shaped dense F16 cache (22 layers,
// 32 query / 4 KV heads: GQA group 8, head_dim 64): the attention part of `moa bench` tg at
// depth. Arg: depth. Counter: KV bytes read per step / time.
void BM_DecodeAllLayers(benchmark::State& state) {
  const int64_t depth = state.range(0), n_layer = 22, n_head = 32, n_head_kv = 4, dim = 64;
  KvCache cache(KvCacheShape{n_layer, n_head_kv, dim, depth + 1, 1, kernels::KvType::kF16});
  const auto kv = random_floats(kChunk * n_head_kv * dim, 1);
  for (int64_t layer = 0; layer < n_layer; ++layer) {
    for (int64_t pos = 0; pos < depth; pos += kChunk)
      cache.store(layer, 0, pos, std::min(kChunk, depth - pos), kv.data(), kv.data());
  }
  cache.set_length(0, depth);
  const kernels::AttentionShape shape{n_head, n_head_kv, dim, 1.0f / std::sqrt(64.0f)};
  const auto q = random_floats(n_head * dim, 3);
  std::vector<float> out(q.size());
  for (auto _ : state) {
    for (int64_t layer = 0; layer < n_layer; ++layer) {
      cache.attend(layer, 0, depth, 1, shape, q.data(), kv.data(), kv.data(), out.data(),
                   omp_get_max_threads());
    }
    benchmark::DoNotOptimize(out.data());
  }
  const double bytes = 2.0 * 2.0 * n_layer * n_head_kv * dim * static_cast<double>(depth);
  state.counters["kv_GBps"] =
      benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_DecodeAllLayers)->Arg(4096)->Arg(16384)->UseRealTime()->Unit(benchmark::kMillisecond);

// A whole 16K prefill in chunks (8 query heads, 2 KV heads). Arg: density percent.
void BM_Prefill16K(benchmark::State& state) {
  const int64_t density = state.range(0), n_head = 8, n_head_kv = 2;
  const kernels::AttentionShape shape{n_head, n_head_kv, 128, 1.0f / std::sqrt(128.0f)};
  const auto q = random_floats(kChunk * n_head * 128, 3);
  const auto kv = random_floats(kChunk * n_head_kv * 128, 4);
  std::vector<float> out(q.size());
  for (auto _ : state) {
    auto cache = layer_cache(n_head, n_head_kv, density);
    for (int64_t pos = 0; pos < kContext; pos += kChunk) {
      cache->attend(0, 0, pos, kChunk, shape, q.data(), kv.data(), kv.data(), out.data(),
                    omp_get_max_threads());
      cache->set_length(0, pos + kChunk);
    }
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Prefill16K)
    ->Arg(100)
    ->Arg(50)
    ->Arg(25)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace moa
