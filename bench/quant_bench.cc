// Throughput of the scalar row conversions (dequantize_row feeds prefill GEMM tiles, so its speed
// matters; quantize_row only builds test models and is timed for reference).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "gguf/quant.h"

namespace moa::gguf {
namespace {

constexpr int64_t kRow = 4096;

std::vector<float> random_row() {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(kRow);
  for (float& v : x) v = dist(rng);
  return x;
}

void BM_DequantizeRow(benchmark::State& state) {
  const auto type = static_cast<TensorType>(state.range(0));
  const std::vector<float> x = random_row();
  std::vector<uint8_t> bytes(row_bytes(type, kRow));
  quantize_row(type, x.data(), bytes.data(), kRow);
  std::vector<float> y(kRow);
  for (auto _ : state) {
    dequantize_row(type, bytes.data(), y.data(), kRow);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * kRow);
  state.SetLabel(tensor_type_name(static_cast<uint32_t>(type)));
}

void BM_QuantizeRow(benchmark::State& state) {
  const auto type = static_cast<TensorType>(state.range(0));
  const std::vector<float> x = random_row();
  std::vector<uint8_t> bytes(row_bytes(type, kRow));
  for (auto _ : state) {
    quantize_row(type, x.data(), bytes.data(), kRow);
    benchmark::DoNotOptimize(bytes.data());
  }
  state.SetItemsProcessed(state.iterations() * kRow);
  state.SetLabel(tensor_type_name(static_cast<uint32_t>(type)));
}

// Type codes: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K.
BENCHMARK(BM_DequantizeRow)->Arg(0)->Arg(1)->Arg(30)->Arg(8)->Arg(2)->Arg(12)->Arg(14);
BENCHMARK(BM_QuantizeRow)->Arg(0)->Arg(1)->Arg(30)->Arg(8)->Arg(2)->Arg(12)->Arg(14);

}  // namespace
}  // namespace moa::gguf
