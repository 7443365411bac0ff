// Micro-benchmarks of the kernels: matvec per stored format (bytes/s against measured memory
// bandwidth), 512-token matmul against plain sgemm (FLOP/s), and attention prefill/decode at
// several context lengths and mask densities. Thread count: all cores (omp_get_max_threads).
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "bench_support.h"
#include "gguf/quant.h"
#include "kernels/bandwidth.h"
#include "kernels/gemm_half.h"
#include "kernels/gemm_int8.h"
#include "kernels/kernels.h"
#include "kernels/peak_probe.h"
#include "kernels/q8_activation.h"
#include "kernels/row_dot.h"
#include "util/huge_pages.h"

namespace moa::kernels {
namespace {

using gguf::TensorType;

using bench::random_floats;

std::vector<uint8_t> stored_matrix(TensorType type, int64_t rows, int64_t cols) {
  const auto values = random_floats(cols, 1);
  const size_t row_bytes = gguf::row_bytes(type, cols);
  std::vector<uint8_t> bytes(row_bytes * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    gguf::quantize_row(type, values.data(), bytes.data() + r * row_bytes, cols);
  }
  return bytes;
}

int threads() { return omp_get_max_threads(); }

// The GFLOP/s counter of `tokens` tokens times an n x n matrix per iteration.
void set_gflops(benchmark::State& state, int64_t tokens, int64_t n) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * tokens * n * n * static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
}

void BM_MemoryBandwidth(benchmark::State& state) {
  double gbs = 0.0;
  for (auto _ : state) gbs = measure_memory_bandwidth_gbs(threads());
  state.counters["GB/s"] = gbs;
}
BENCHMARK(BM_MemoryBandwidth)->Iterations(1)->Unit(benchmark::kMillisecond);

// Args of the matvec benchmarks: every stored format's type code (F32, F16, BF16, Q8_0, Q4_0,
// Q4_K, Q6_K).
void every_stored_type(benchmark::internal::Benchmark* b) {
  for (int type : {0, 1, 30, 8, 2, 12, 14}) b->Arg(type);
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}

// The format's name and the bytes of one matrix read per product.
void set_matvec_counters(benchmark::State& state, TensorType type, size_t matrix_bytes) {
  state.SetLabel(gguf::tensor_type_name(static_cast<uint32_t>(type)));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(matrix_bytes));
}

void BM_Matvec(benchmark::State& state) {
  const auto type = static_cast<TensorType>(state.range(0));
  const int64_t n = 4096;
  // Enough copies to exceed the 32 MiB L3, so every product streams from memory; on huge pages
  // like the model's weights.
  const auto first = stored_matrix(type, n, n);
  const size_t copies = (size_t{96} << 20) / first.size() + 1;
  const std::vector<HugePageVector<uint8_t>> matrices(
      copies, HugePageVector<uint8_t>(first.begin(), first.end()));
  const auto x = random_floats(n, 2);
  std::vector<float> y(static_cast<size_t>(n));
  size_t next = 0;
  for (auto _ : state) {
    const WeightMatrix w{type, matrices[next].data(), n, n};
    next = (next + 1) % copies;
    matvec(w, x.data(), y.data(), threads());
    benchmark::DoNotOptimize(y.data());
  }
  set_matvec_counters(state, type, first.size());
}
BENCHMARK(BM_Matvec)->Apply(every_stored_type);

// Why matvec reads several rows at once (docs/dense-engine.md, Row streams). Arg: rows per row
// dot (1, 2 or 4, each group's rows a 1/n of the matrix apart, as matvec groups them). Q8_0
// 4096 x 4096 matrices streamed from memory like BM_Matvec; every variant prefetches ahead in its
// row dots. Compare the GB/s of the three in one run with BM_MemoryBandwidth.
void BM_MatvecRowStreams(benchmark::State& state) {
  const auto streams = static_cast<int64_t>(state.range(0));
  const int64_t n = 4096;
  const auto first = stored_matrix(TensorType::kQ8_0, n, n);
  const size_t copies = (size_t{96} << 20) / first.size() + 1;
  const std::vector<HugePageVector<uint8_t>> matrices(
      copies, HugePageVector<uint8_t>(first.begin(), first.end()));
  const auto x = random_floats(n, 2);
  std::vector<float> y(static_cast<size_t>(n));
  const int64_t stride = n / streams;
  size_t next = 0;
  for (auto _ : state) {
    const RowDot dot({TensorType::kQ8_0, matrices[next].data(), n, n}, x.data());
    next = (next + 1) % copies;
#pragma omp parallel for num_threads(threads()) schedule(dynamic, 16)
    for (int64_t u = 0; u < stride; ++u) {
      int64_t rows[kRowStreams];
      for (int64_t k = 0; k < streams; ++k) rows[k] = u + k * stride;
      float out[kRowStreams];
      dot.dot_rows(std::span(rows, static_cast<size_t>(streams)), out);
      for (int64_t k = 0; k < streams; ++k) y[static_cast<size_t>(rows[k])] = out[k];
    }
    benchmark::DoNotOptimize(y.data());
  }
  set_matvec_counters(state, TensorType::kQ8_0, first.size());
}
BENCHMARK(BM_MatvecRowStreams)
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// The same products from one 512 x 4096 matrix reused every iteration (1.1 MiB for Q4_0 to
// 8 MiB for F32: in L2 or L3): the kernel's instruction-bound rate. Where it is not well above
// BM_Matvec's, decode of that format is compute-bound, not memory-bound.
void BM_MatvecInCache(benchmark::State& state) {
  const auto type = static_cast<TensorType>(state.range(0));
  const int64_t rows = 512, cols = 4096;
  const auto stored = stored_matrix(type, rows, cols);
  const auto x = random_floats(cols, 2);
  std::vector<float> y(static_cast<size_t>(rows));
  const WeightMatrix w{type, stored.data(), rows, cols};
  for (auto _ : state) {
    matvec(w, x.data(), y.data(), threads());
    benchmark::DoNotOptimize(y.data());
  }
  set_matvec_counters(state, type, stored.size());
}
BENCHMARK(BM_MatvecInCache)->Apply(every_stored_type);

// Args: type code, n (an n x n matrix times 512 tokens). Block-quantized types take the int8
// GEMM where the CPU has AVX-512 VNNI (kernels/gemm_int8.h); compare with BM_SgemmPeak512 of the
// same n in the same run.
void BM_Matmul512(benchmark::State& state) {
  const auto type = static_cast<TensorType>(state.range(0));
  const int64_t n = state.range(1), tokens = 512;
  const auto bytes = stored_matrix(type, n, n);
  const auto x = random_floats(tokens * n, 2);
  std::vector<float> y(static_cast<size_t>(tokens * n));
  const WeightMatrix w{type, bytes.data(), n, n};
  for (auto _ : state) {
    matmul(w, x.data(), tokens, y.data(), threads());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(gguf::tensor_type_name(static_cast<uint32_t>(type)));
  set_gflops(state, tokens, n);
}
// F32, F16, Q8_0, Q4_0, Q4_K, Q6_K, BF16 at 4096; the int8 types also at 2048 (llama-1b's width).
BENCHMARK(BM_Matmul512)
    ->Args({0, 4096})
    ->Args({1, 4096})
    ->Args({8, 4096})
    ->Args({12, 4096})
    ->Args({8, 2048})
    ->Args({2, 2048})
    ->Args({12, 2048})
    ->Args({14, 2048})
    ->Args({30, 4096})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The F16/BF16 prefill kernels side by side on the same 512-token product (compare in one run
// with --benchmark_enable_random_interleaving: this VM's speed drifts). Args: type code (F16,
// BF16), n, kernels (0: AMX-BF16 tiles where the CPU and OS allow; 1: the AVX-512 micro-kernel,
// F32 FMAs or vdpbf16ps).
void BM_HalfKernels512(benchmark::State& state) {
  const auto type = static_cast<TensorType>(state.range(0));
  const int64_t n = state.range(1), tokens = 512;
  const bool amx = state.range(2) == 0;
  if (half_gemm_kind(type) == HalfGemm::kNone || (amx && !half_gemm_uses_amx())) {
    state.SkipWithError("this CPU/OS lacks the kernel (AVX-512 BF16, or AMX-BF16 for arg 0)");
    return;
  }
  const auto bytes = stored_matrix(type, n, n);
  auto x = random_floats(tokens * n, 2);
  round_activation_grid(type, x.data(), n, tokens);
  std::vector<float> y(static_cast<size_t>(tokens * n));
  const WeightMatrix w{type, bytes.data(), n, n};
  for (auto _ : state) {
    matmul_half(w, x.data(), tokens, y.data(), threads(), amx);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(gguf::tensor_type_name(static_cast<uint32_t>(type)));
  set_gflops(state, tokens, n);
}
BENCHMARK(BM_HalfKernels512)
    ->ArgsProduct({{1, 30}, {2048}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// One int8 micro-kernel call at a time on one thread, its weights (32 rows x 512 values, one K
// chunk) and activations in L1: the micro-kernel's own rate, beside the one-thread vpdpbusd probe
// (`peak_GOP/s`). Compare with BM_Matmul512 under OMP_NUM_THREADS=1 in the same run: the gap is
// what the GEMM around the micro-kernel costs (packing, rounding, activations from L2). Arg: type.
void BM_Int8TileInCache(benchmark::State& state) {
  const auto type = static_cast<TensorType>(state.range(0));
  const Int8GemmFormat f = int8_gemm_format(type);
  const int64_t cols = 512, rows = kTileGroups * kGemmLanes, tokens = tile_tokens(f);
  const int64_t n_super = cols / f.super_k;
  const auto stored = stored_matrix(type, rows, cols);
  const WeightMatrix w{type, stored.data(), rows, cols};
  std::vector<uint8_t> packed(static_cast<size_t>(kTileGroups * n_super * f.group_bytes));
  pack_int8_gemm_groups(w, 0, kTileGroups, packed.data());
  const auto x = random_floats(tokens * cols, 2);
  Int8Batch batch;
  round_int8_batch(type, x.data(), tokens, cols, batch, 1);
  // The offset sums only move values, not time: zeros stand in for them.
  std::vector<int32_t> init(static_cast<size_t>(tokens * n_super * f.subs));
  std::vector<int32_t> min_sums(static_cast<size_t>(tokens * n_super * 4));
  std::vector<float> y(static_cast<size_t>(tokens * rows));
  Int8Tile tile;
  tile.w = packed.data();
  tile.group_stride = n_super * f.group_bytes;
  tile.x = batch.k_blocks ? batch.q8k.qs.data() : batch.q8.qs.data();
  tile.x_stride = cols;
  tile.x_scales = batch.k_blocks ? batch.q8k.scales.data() : batch.q8.scales.data();
  tile.x_scales_stride = n_super;
  tile.x_init = init.data();
  tile.x_init_stride = n_super * f.subs;
  tile.x_min_sums = f.mins ? min_sums.data() : nullptr;
  tile.x_min_sums_stride = n_super * 4;
  tile.n_super = n_super;
  tile.y = y.data();
  tile.y_stride = rows;
  tile.n_tokens = static_cast<int>(tokens);
  tile.n_groups = kTileGroups;
  tile.n_rows = rows;
  tile.accumulate = true;
  constexpr int kCalls = 256;
  const double peak = measure_int8_peak(1).gops;
  for (auto _ : state) {
    for (int i = 0; i < kCalls; ++i) run_int8_tile(f, tile, false);
    benchmark::DoNotOptimize(y.data());
  }
  const double gops = 2.0 * static_cast<double>(tokens * rows * cols) * kCalls / 1e9;
  state.counters["GOP/s"] = benchmark::Counter(gops * static_cast<double>(state.iterations()),
                                               benchmark::Counter::kIsRate);
  state.counters["peak_GOP/s"] = peak;
  state.SetLabel(gguf::tensor_type_name(static_cast<uint32_t>(type)));
}
// Q8_0, Q4_0, Q4_K, Q6_K.
BENCHMARK(BM_Int8TileInCache)->Arg(8)->Arg(2)->Arg(12)->Arg(14)->UseRealTime();

// The ceiling for BM_Matmul512: OpenBLAS sgemm on F32 with its own threads. Arg: n.
void BM_SgemmPeak512(benchmark::State& state) {
  const int64_t n = state.range(0), tokens = 512;
  const auto w = random_floats(n * n, 1), x = random_floats(tokens * n, 2);
  std::vector<float> y(static_cast<size_t>(tokens * n));
  openblas_set_num_threads(threads());
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(tokens),
                static_cast<blasint>(n), static_cast<blasint>(n), 1.0f, x.data(),
                static_cast<blasint>(n), w.data(), static_cast<blasint>(n), 0.0f, y.data(),
                static_cast<blasint>(n));
    benchmark::DoNotOptimize(y.data());
  }
  set_gflops(state, tokens, n);
}
BENCHMARK(BM_SgemmPeak512)->Arg(4096)->Arg(2048)->UseRealTime()->Unit(benchmark::kMillisecond);

// Llama-3-8B-like layer: 32 query heads, 8 KV heads, head_dim 128, F16 cache.
// Args: context length, density percent (span = density * context, 4 sinks), queries.
void BM_Attention(benchmark::State& state) {
  const int64_t n_keys = state.range(0), density = state.range(1), n_query = state.range(2);
  const AttentionShape shape{32, 8, 128, 1.0f / std::sqrt(128.0f)};
  const auto kv32 = random_floats(8 * n_keys * 128, 3);
  std::vector<uint16_t> kv16(kv32.size());
  for (size_t i = 0; i < kv32.size(); ++i) kv16[i] = gguf::fp32_to_fp16(kv32[i]);
  const auto q = random_floats(n_query * 32 * 128, 4);
  std::vector<float> out(q.size());
  const KvView kv{KvType::kF16, kv16.data(), kv16.data(), n_keys * 128, n_keys};
  const std::vector<BandMask> masks(8, BandMask{4, std::max<int64_t>(1, n_keys * density / 100)});
  for (auto _ : state) {
    attention(shape, q.data(), n_query, n_keys - n_query, kv, masks, out.data(), threads());
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Attention)
    ->ArgsProduct({{2048}, {100, 50, 25}, {2048}})             // prefill
    ->ArgsProduct({{4096, 16384, 32768}, {100, 50, 25}, {1}})  // decode
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace moa::kernels
