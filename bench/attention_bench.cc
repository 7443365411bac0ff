// Attention through the KV caches at 16K context of a Llama-3-8B shape (32 layers, 32 query / 8
// KV heads, head_dim 128, F16 cache, all cores), dense (KvCache) against StreamingLLM plans
// (`--method streaming --density D`: 64 sinks + a window keeping density x N keys on every head) in
// the static ring cache (StaticKvCache). Each layer has its own region of the cache and every step
// runs through all 32 layers, as decode does, so the keys come from DRAM: one layer's 25% cache
// (~17 MiB) rerun alone could stay in the CPU caches. Benchmarks: one decode step, one 256-token
// prefill chunk at the end of the context, a whole 16K prefill in 256-token chunks (one layer of
// 8/2 heads, so it finishes in seconds), and dense decode steps at several depths of a
// TinyLlama-shaped (GQA group 8) and a multi-head (Llama-2-7B-like) cache.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>
#include <random>
#include <string_view>
#include <vector>

#include "bench_support.h"
#include "eval/throughput.h"
#include "kernels/attention_backward.h"
#include "kv/attention_method.h"
#include "kv/static_kv_cache.h"
#include "plan/plan.h"

namespace moa {
namespace {

constexpr int64_t kContext = 16384;
constexpr int64_t kChunk = kDefaultRingChunk;

using bench::random_floats;

ModelConfig attention_shape(int64_t n_layer, int64_t n_head, int64_t n_head_kv, int64_t head_dim) {
  ModelConfig c;
  c.arch_name = "llama";
  c.n_layer = n_layer, c.n_head = n_head, c.n_head_kv = n_head_kv, c.head_dim = head_dim;
  return c;
}

// `moa bench --method streaming --density D` (dense for 100%) at N = kContext.
AttentionMethod method_at(int64_t density_percent) {
  AttentionMethod m;
  if (density_percent < 100) {
    m.kind = AttentionKind::kStreaming;
    m.density = static_cast<double>(density_percent) / 100.0;
  }
  return m;
}

// The cache and plan of a method for one sequence of kContext tokens, filled to `length`.
struct FilledCache {
  std::optional<SparsePlan> plan;
  std::unique_ptr<AttentionCache> cache;
};

FilledCache filled_cache(const ModelConfig& c, const AttentionMethod& m, int64_t length) {
  FilledCache f;
  f.plan = method_plan(m, identity_of(c, ""), kContext);
  f.cache =
      make_attention_cache(kv_shape(c, kContext, 1, kernels::KvType::kF16), m, f.plan, kChunk);
  std::mt19937_64 rng(1);
  fill_synthetic(*f.cache, c, 0, length, rng);
  return f;
}

// MOA_BF16_ATTENTION=1 times BF16 products (F16 cache, AVX512-BF16), as the engine would run.
kernels::AttentionShape shape_of(const ModelConfig& c) {
  const char* bf16 = std::getenv("MOA_BF16_ATTENTION");
  return {c.n_head, c.n_head_kv, c.head_dim, 1.0f / std::sqrt(static_cast<float>(c.head_dim)),
          bf16 != nullptr && std::string_view(bf16) == "1"};
}

double dense_bytes(const ModelConfig& c, int64_t n_ctx) {
  return 2.0 * 2.0 * static_cast<double>(c.n_layer * c.kv_dim() * n_ctx);
}

// One step (n_query new tokens at position pos) through every layer, as forward() runs them.
void attend_all_layers(AttentionCache& cache, const ModelConfig& c, int64_t pos, int64_t n_query,
                       const std::vector<float>& q, const std::vector<float>& kv,
                       std::vector<float>& out) {
  for (int64_t layer = 0; layer < c.n_layer; ++layer) {
    cache.attend(layer, 0, pos, n_query, shape_of(c), q.data(), kv.data(), kv.data(), out.data(),
                 omp_get_max_threads());
  }
}

// Args: density percent, queries (1: decode, 256: the last prefill chunk). Time: one step
// through all 32 layers. Counters: kv_bytes allocated (all layers) and kv_ratio against dense;
// kv_read_bytes a decode step attends (DecodeKvReads: sinks + span per head) and read_ratio;
// kv_read_GBps; time_per_layer (seconds).
void BM_AttentionAt16K(benchmark::State& state) {
  const int64_t density = state.range(0), n_query = state.range(1);
  const ModelConfig c = attention_shape(32, 32, 8, 128);  // Llama-3-8B
  const AttentionMethod method = method_at(density);
  const int64_t pos = kContext - n_query;
  FilledCache f = filled_cache(c, method, pos);
  const auto q = random_floats(n_query * c.q_dim(), 3);
  const auto kv = random_floats(n_query * c.kv_dim(), 4);
  std::vector<float> out(q.size());
  for (auto _ : state) {
    attend_all_layers(*f.cache, c, pos, n_query, q, kv, out);
    benchmark::DoNotOptimize(out.data());
  }
  const double read = static_cast<double>(
      DecodeKvReads(c, method, f.plan, kContext, kernels::KvType::kF16).bytes_at(kContext - 1));
  state.counters["kv_bytes"] = static_cast<double>(f.cache->bytes());
  state.counters["kv_ratio"] = static_cast<double>(f.cache->bytes()) / dense_bytes(c, kContext);
  state.counters["kv_read_bytes"] = read;
  state.counters["read_ratio"] = read / dense_bytes(c, kContext);
  if (n_query == 1) {
    state.counters["kv_read_GBps"] =
        benchmark::Counter(read, benchmark::Counter::kIsIterationInvariantRate);
  }
  state.counters["time_per_layer"] = benchmark::Counter(
      static_cast<double>(c.n_layer),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_AttentionAt16K)
    ->ArgsProduct({{100, 50, 25}, {1, kChunk}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// One decode step through every layer of a dense cache of shape c. Args: depth, KV type (0:
// F16, 1: Q8_0). Counter: F16 KV bytes at that depth / time.
void decode_all_layers(benchmark::State& state, const ModelConfig& c) {
  const int64_t depth = state.range(0);
  const auto type = state.range(1) == 0 ? kernels::KvType::kF16 : kernels::KvType::kQ8_0;
  auto cache = make_attention_cache(kv_shape(c, depth + 1, 1, type), AttentionMethod{},
                                    std::nullopt, kChunk);
  std::mt19937_64 rng(1);
  fill_synthetic(*cache, c, 0, depth, rng);
  const auto q = random_floats(c.q_dim(), 3);
  const auto kv = random_floats(c.kv_dim(), 4);
  std::vector<float> out(q.size());
  for (auto _ : state) {
    attend_all_layers(*cache, c, depth, 1, q, kv, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["kv_GBps"] =
      benchmark::Counter(dense_bytes(c, depth), benchmark::Counter::kIsIterationInvariantRate);
}

// TinyLlama-1.1B's attention (22 layers, 32 query / 4 KV heads: GQA group 8, head_dim 64): the
// attention part of `moa bench` tg at depth.
void BM_DecodeAllLayers(benchmark::State& state) {
  decode_all_layers(state, attention_shape(22, 32, 4, 64));
}
BENCHMARK(BM_DecodeAllLayers)
    ->ArgsProduct({{1024, 4096, 16384}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Multi-head attention, one query row per KV head (Llama-2-7B's heads: 32 / 32, head_dim 128;
// 22 layers): decode reads 512 bytes of F16 K and V per head and key for one query, so it is
// bound by memory bandwidth alone.
void BM_DecodeMultiHead(benchmark::State& state) {
  decode_all_layers(state, attention_shape(22, 32, 32, 128));
}
BENCHMARK(BM_DecodeMultiHead)
    ->ArgsProduct({{1024, 4096}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// A whole 16K prefill in chunks (one layer, 8 query heads, 2 KV heads: every chunk reuses its
// keys from the CPU caches anyway, and the work follows the causal area). Arg: density percent.
void BM_Prefill16K(benchmark::State& state) {
  const ModelConfig c = attention_shape(1, 8, 2, 128);
  const auto q = random_floats(kChunk * c.q_dim(), 3);
  const auto kv = random_floats(kChunk * c.kv_dim(), 4);
  std::vector<float> out(q.size());
  for (auto _ : state) {
    FilledCache f = filled_cache(c, method_at(state.range(0)), 0);
    for (int64_t pos = 0; pos < kContext; pos += kChunk) {
      attend_all_layers(*f.cache, c, pos, kChunk, q, kv, out);
      f.cache->set_length(0, pos + kChunk);
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

// The profiler's attention backward (kernels/attention_backward.h) with the influence histogram,
// one TinyLlama-shaped layer (32 query / 4 KV heads, head_dim 64), against the forward with
// statistics it follows. Arg: sequence length. Counter: GFLOP/s of the backward's five tile
// products (S, dP, dQ, dK, dV) over the causal half.
void BM_AttentionBackward(benchmark::State& state) {
  const int64_t n = state.range(0), n_head = 32, n_head_kv = 4, hd = 64;
  const kernels::AttentionShape shape{n_head, n_head_kv, hd, 1.0f / std::sqrt(float(hd))};
  const auto q = random_floats(n * n_head * hd, 5), k = random_floats(n * n_head_kv * hd, 6);
  const auto v = random_floats(n * n_head_kv * hd, 7), d_out = random_floats(q.size(), 8);
  std::vector<float> out(q.size()), lse(static_cast<size_t>(n * n_head));
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  const int threads = omp_get_max_threads();
  kernels::attention_forward_with_stats(shape, {q.data(), k.data(), v.data(), n}, out.data(),
                                        lse.data(), threads);
  kernels::InfluenceHistogram hist;
  for (auto _ : state) {
    kernels::attention_backward(shape, {q.data(), k.data(), v.data(), n}, out.data(), lse.data(),
                                d_out.data(), {dq.data(), dk.data(), dv.data(), &hist, 4}, threads);
    benchmark::DoNotOptimize(dq.data());
  }
  const double flops = 5.0 * 2.0 * double(n) * double(n) / 2.0 * double(n_head * hd);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_AttentionBackward)->Arg(1024)->Arg(4096)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace moa
