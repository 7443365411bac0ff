// Throughput measurement behind `moa bench` (the role llama-bench plays for llama.cpp): prefill
// and decode tokens/s at several KV-cache depths and batch sizes, medians of repeats, and how
// close decode comes to the machine's memory-bandwidth bound. Every row gets its own plan and
// cache for N = its depth + its test's tokens, and decode rows count the bytes a step really
// reads (weights + the keys and values attention visits), not the bytes allocated.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/forward.h"
#include "kernels/kernels.h"
#include "kv/attention_method.h"

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
  // Attention methods compared side by side; each row plans its method (streaming window, H2O
  // budget, plan spans) and sizes its cache for N = depth + that test's tokens.
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
  int64_t n_ctx = 0;            // N the row's method was planned and its cache sized for
  int64_t tokens = 0;           // tokens processed per repeat (all sequences)
  std::vector<double> seconds;  // one per repeat
  double median_seconds = 0.0;
  double tokens_per_second = 0.0;
  double bytes_per_step = 0.0;          // decode: weights + kv_bytes_read_per_step, mean per step
  double kv_bytes_read_per_step = 0.0;  // decode: K/V bytes attended, all sequences, mean per step
  double gigabytes_per_second = 0.0;    // decode: achieved read bandwidth
  double gflops = 0.0;                  // prefill: matmul FLOP rate
  // With probe_machine: median over repeats of the better probe around each repeat (memory
  // bandwidth for decode, sgemm peak for prefill), and median over repeats of the achieved
  // rate / that bound.
  double bandwidth_gbs = 0.0;
  double sgemm_gflops = 0.0;
  double fraction_of_bound = 0.0;
  // Prefill with probe_machine: the better of the int8 dot-product peaks probed just before and
  // after the row (kernels/peak_probe.h), in 1e9 ops/s, and gflops / that peak.
  double int8_peak_gops = 0.0;
  double fraction_of_int8_peak = 0.0;
  kernels::KvType kv_type = kernels::KvType::kF16;  // how the row's cache stores K/V
  uint64_t kv_cache_bytes = 0;  // allocated by the row's cache (all its sequences)
  double kv_density = 1.0;      // keys kept per KV head / N, sinks included (method_kv_density)
};

// The keys and values one decode step of a sequence attends, per layer and KV head, as a
// function of the query position p: dense p + 1; a static plan cache min(p + 1, G + S_h) (its
// sinks and band; hidden tiles are never loaded); H2O min(p, B) + 1 (its kept keys and the new
// one; its extra pass over those keys for the scores is not counted twice).
class DecodeKvReads {
 public:
  DecodeKvReads(const ModelConfig& config, const AttentionMethod& method,
                const std::optional<SparsePlan>& plan, int64_t n_ctx, kernels::KvType kv_type);
  // K and V bytes of every layer one sequence's decode step at position `pos` reads.
  uint64_t bytes_at(int64_t pos) const;
  // Mean of bytes_at over the steps at positions depth .. depth + n_steps - 1.
  double mean_bytes(int64_t depth, int64_t n_steps) const;

 private:
  std::vector<int64_t> most_keys_;  // per (layer, KV head): keys attended at most
  uint64_t key_value_bytes_ = 0;    // one key and one value of one head
};

// Runs every (depth, batch) combination. The cache is filled to each depth with synthetic keys
// and values (timing does not depend on their content), so deep contexts need no long prefill.
// `progress` receives one line per finished test.
std::vector<ThroughputResult> measure_throughput(
    const Model& model, const ThroughputConfig& config,
    const std::function<void(const std::string&)>& progress);

// Fills sequence `seq` of any cache to `depth` with random keys and values (AttentionCache::fill;
// timing does not depend on the values).
void fill_synthetic(AttentionCache& cache, const ModelConfig& config, int seq, int64_t depth,
                    std::mt19937_64& rng);

// Peak single-precision GEMM rate of OpenBLAS on this machine (GFLOP/s), the prefill ceiling.
double measure_sgemm_gflops(int n_threads);
// The OpenBLAS kernel set that sgemm runs (e.g. "SkylakeX", "Haswell"): OPENBLAS_CORETYPE in the
// environment overrides moa's choice, and an older kernel set can halve the peak above.
std::string sgemm_kernel_name();

double median(std::vector<double> values);

}  // namespace moa
