// Throughput measurement behind `moa bench` (the role llama-bench plays for llama.cpp): prefill
// and decode tokens/s at several KV-cache depths and batch sizes, medians of repeats, and how
// close decode comes to the machine's memory-bandwidth bound.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "kv/attention_method.h"
#include "model/forward.h"

namespace moa {

struct ThroughputConfig {
  int64_t n_prompt = 512;  // prefill test size (0 skips it)
  int64_t n_gen = 128;     // decode test size (0 skips it)
  int repeats = 5;
  std::vector<int64_t> depths = {0};  // tokens already in the cache when a test starts
  std::vector<int> batches = {1};     // sequences decoded together
  int n_threads = 1;
  kernels::KvType kv_type = kernels::KvType::kF16;
  uint64_t seed = 1;
  // Attention methods compared side by side (sparse ones get a StaticKvCache planned for
  // max depth + test size tokens).
  std::vector<AttentionMethod> methods = {AttentionMethod{}};
  // Probe the machine around every timed repeat: the memory bandwidth around decode repeats,
  // the sgemm peak around prefill repeats. On a machine whose speed drifts (shared VMs), a
  // bound measured minutes earlier misstates "% of bound".
  bool probe_machine = false;
};

struct ThroughputResult {
  std::string method = "dense";  // method_label()
  std::string test;              // "pp512" / "tg128"
  int64_t depth = 0;
  int batch = 1;
  int64_t tokens = 0;           // tokens processed per repeat (all sequences)
  std::vector<double> seconds;  // one per repeat
  double median_seconds = 0.0;
  double tokens_per_second = 0.0;
  double bytes_per_step = 0.0;        // decode: weights + KV bytes read per step
  double gigabytes_per_second = 0.0;  // decode: achieved read bandwidth
  double gflops = 0.0;                // prefill: matmul FLOP rate
  // With probe_machine: median over repeats of the better probe around each repeat (memory
  // bandwidth for decode, sgemm peak for prefill), and median over repeats of the achieved
  // rate / that bound.
  double bandwidth_gbs = 0.0;
  double sgemm_gflops = 0.0;
  double fraction_of_bound = 0.0;
  uint64_t kv_cache_bytes = 0;
  double kv_density = 1.0;  // keys kept per KV head / N, sinks included (method_kv_density)
};

// Runs every (depth, batch) combination. The cache is filled to each depth with synthetic keys
// and values (timing does not depend on their content), so deep contexts need no long prefill.
// `progress` receives one line per finished test.
std::vector<ThroughputResult> measure_throughput(
    const Model& model, const ThroughputConfig& config,
    const std::function<void(const std::string&)>& progress);

// Peak single-precision GEMM rate of OpenBLAS on this machine (GFLOP/s), the prefill ceiling.
double measure_sgemm_gflops(int n_threads);

double median(std::vector<double> values);

}  // namespace moa
