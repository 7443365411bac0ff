// Timed prefill/decode loops over a real forward pass; see throughput.h.
#include "eval/throughput.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <random>
#include <tuple>
#include <utility>

#include "engine/generate.h"
#include "kernels/bandwidth.h"
#include "kernels/peak_probe.h"
#include "kv/h2o_kv_cache.h"
#include "kv/plan_masks.h"
#include "kv/static_kv_cache.h"
#include "util/error.h"
#include "util/input_error.h"

namespace moa {
namespace {

using Clock = std::chrono::steady_clock;

double elapsed(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<TokenId> random_tokens(std::mt19937_64& rng, int64_t n, int64_t n_vocab) {
  std::uniform_int_distribution<TokenId> dist(0, static_cast<TokenId>(n_vocab - 1));
  std::vector<TokenId> ids(static_cast<size_t>(n));
  for (TokenId& id : ids) id = dist(rng);
  return ids;
}

}  // namespace

void fill_synthetic(AttentionCache& cache, const ModelConfig& c, int seq, int64_t depth,
                    std::mt19937_64& rng) {
  constexpr int64_t kRows = 256;  // distinct synthetic rows, reused cyclically
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> k(static_cast<size_t>(kRows * c.kv_dim())), v(k.size());
  for (float& x : k) x = dist(rng);
  for (float& x : v) x = dist(rng);
  cache.fill(seq, depth, k, v);
}

namespace {

// Rewinds a sequence to `depth` between repeats. Dense and ring caches keep their synthetic
// keys; a cache that cannot rewind (H2O evicted keys) is refilled.
void rewind(AttentionCache& cache, const ModelConfig& c, int seq, int64_t depth,
            std::mt19937_64& rng) {
  if (!cache.rewind(seq, depth)) fill_synthetic(cache, c, seq, depth, rng);
}

// FLOPs of the weight matmuls for one token (2 per multiply-add).
double matmul_flops_per_token(const Model& model) {
  double params = 0;
  for (const LayerWeights& w : model.weights().layers) {
    for (const kernels::WeightMatrix* m :
         {&w.attn_q, &w.attn_k, &w.attn_v, &w.attn_output, &w.ffn_gate, &w.ffn_up, &w.ffn_down}) {
      params += static_cast<double>(m->rows * m->cols);
    }
  }
  return 2.0 * params;
}

// Bytes of the weights a decode step streams: every matrix once (the embedding table only one
// row per token, left out).
double decode_weight_bytes(const Model& model) {
  const gguf::GgufFile& f = model.file();
  double bytes = static_cast<double>(weight_bytes(f));
  if (!model.config().tied_output)
    bytes -= static_cast<double>(f.tensor("token_embd.weight").n_bytes);
  return bytes;
}

struct Case {
  int64_t depth;
  int batch;
  double bytes_per_step = 0.0;  // decode: weights + K/V attended by every sequence, mean
};

double probe(const ThroughputConfig& cfg) {
  return kernels::measure_memory_bandwidth_gbs(cfg.n_threads);
}

// Each repeat's rate (`work` per repeat over its seconds) is judged against the better of the
// probes just before and after it (the machine may drift between repeats); returns the medians
// of those bounds and of rate / bound.
std::pair<double, double> bound_and_fraction(const std::vector<double>& seconds, double work,
                                             const std::vector<double>& probes) {
  std::vector<double> bounds, fractions;
  for (size_t i = 0; i < seconds.size(); ++i) {
    const double bound = std::max(probes[i], probes[i + 1]);
    bounds.push_back(bound);
    fractions.push_back(work / seconds[i] / bound);
  }
  return {median(bounds), median(fractions)};
}

ThroughputResult time_prefill(const Model& model, AttentionCache& cache,
                              const ThroughputConfig& cfg, Case cs, std::mt19937_64& rng) {
  const ModelConfig& c = model.config();
  ThroughputResult r;
  r.test = fmt::format("pp{}", cfg.n_prompt);
  r.depth = cs.depth;
  r.tokens = cfg.n_prompt;
  fill_synthetic(cache, c, 0, cs.depth, rng);
  std::vector<double> probes;  // probes[i] and probes[i + 1] bracket timed repeat i
  for (int rep = 0; rep < cfg.repeats + 1; ++rep) {  // the first run warms caches and is dropped
    rewind(cache, c, 0, cs.depth, rng);
    if (rep == 1 && cfg.probe_machine) probes.push_back(measure_sgemm_gflops(cfg.n_threads));
    std::vector<TokenId> ids = random_tokens(rng, cfg.n_prompt, c.n_vocab);
    auto start = Clock::now();
    prefill(model, cache, 0, ids, cfg.n_threads);  // the engine's chunking, as generate runs it
    if (rep == 0) continue;
    r.seconds.push_back(elapsed(start));
    if (cfg.probe_machine) probes.push_back(measure_sgemm_gflops(cfg.n_threads));
  }
  const double flops = matmul_flops_per_token(model) * static_cast<double>(cfg.n_prompt);
  r.median_seconds = median(r.seconds);
  r.tokens_per_second = static_cast<double>(cfg.n_prompt) / r.median_seconds;
  r.gflops = flops / r.median_seconds / 1e9;
  if (cfg.probe_machine)
    std::tie(r.sgemm_gflops, r.fraction_of_bound) =
        bound_and_fraction(r.seconds, flops / 1e9, probes);
  return r;
}

ThroughputResult time_decode(const Model& model, AttentionCache& cache, const ThroughputConfig& cfg,
                             Case cs, std::mt19937_64& rng) {
  const ModelConfig& c = model.config();
  ThroughputResult r;
  r.test = fmt::format("tg{}", cfg.n_gen);
  r.depth = cs.depth;
  r.batch = cs.batch;
  r.tokens = cfg.n_gen * cs.batch;
  r.bytes_per_step = cs.bytes_per_step;
  std::vector<int> seqs(static_cast<size_t>(cs.batch));
  for (int s = 0; s < cs.batch; ++s) {
    seqs[static_cast<size_t>(s)] = s;
    fill_synthetic(cache, c, s, cs.depth, rng);
  }
  std::vector<double> probes;  // probes[i] and probes[i + 1] bracket timed repeat i
  for (int rep = 0; rep < cfg.repeats + 1; ++rep) {
    for (int s = 0; s < cs.batch; ++s) rewind(cache, c, s, cs.depth, rng);
    if (rep == 1 && cfg.probe_machine) probes.push_back(probe(cfg));
    double total = 0.0;
    for (int64_t step = 0; step < cfg.n_gen; ++step) {
      std::vector<TokenId> ids = random_tokens(rng, cs.batch, c.n_vocab);
      auto start = Clock::now();
      decode_tokens(model, cache, seqs, ids, cfg.n_threads);
      total += elapsed(start);
    }
    if (rep == 0) continue;  // warm-up
    r.seconds.push_back(total);
    if (cfg.probe_machine) probes.push_back(probe(cfg));
  }
  r.median_seconds = median(r.seconds);
  r.tokens_per_second = static_cast<double>(r.tokens) / r.median_seconds;
  r.gigabytes_per_second =
      r.bytes_per_step * static_cast<double>(cfg.n_gen) / r.median_seconds / 1e9;
  if (cfg.probe_machine) {
    std::tie(r.bandwidth_gbs, r.fraction_of_bound) = bound_and_fraction(
        r.seconds, r.bytes_per_step * static_cast<double>(cfg.n_gen) / 1e9, probes);
  }
  return r;
}

void check_config(const ThroughputConfig& cfg) {
  if (cfg.n_prompt < 0 || cfg.n_gen < 0 || (cfg.n_prompt == 0 && cfg.n_gen == 0)) {
    fail_input("test size",
               "{} prompt / {} generated tokens: give a positive prompt or generation size",
               cfg.n_prompt, cfg.n_gen);
  }
  if (cfg.repeats < 1) fail_input("repeats", "{} repeats: expected at least 1", cfg.repeats);
  // Positions are 32-bit in the caches; the bound also keeps depth + test size from overflowing.
  constexpr int64_t kMaxPositions = std::numeric_limits<int32_t>::max();
  const int64_t test = std::max(cfg.n_prompt, cfg.n_gen);
  if (test > kMaxPositions) {
    fail_input("test size", "test size {} exceeds {} positions", test, kMaxPositions);
  }
  for (int64_t d : cfg.depths) {
    if (d < 0) fail_input("depth", "depth {} is negative (expected >= 0 tokens)", d);
    if (d > kMaxPositions - test) {
      fail_input("depth", "depth {} + test size {} exceeds {} positions", d, test, kMaxPositions);
    }
  }
  for (int b : cfg.batches) {
    if (b < 1) fail_input("batch", "{} is not a batch size (expected >= 1 sequences)", b);
  }
}

}  // namespace

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

DecodeKvReads::DecodeKvReads(const ModelConfig& config, const AttentionMethod& method,
                             const std::optional<SparsePlan>& plan, int64_t n_ctx,
                             kernels::KvType kv_type)
    : key_value_bytes_(2 * kernels::kv_bytes(kv_type, config.head_dim, config.head_dim)) {
  for (int64_t layer = 0; layer < config.n_layer; ++layer) {
    if (method.kind == AttentionKind::kH2o) {
      most_keys_.insert(most_keys_.end(), static_cast<size_t>(config.n_head_kv),
                        h2o_budget(method.density, n_ctx) + 1);
    } else if (plan) {
      for (const kernels::BandMask& mask : band_masks(*plan, layer, n_ctx))
        most_keys_.push_back(mask.sinks + mask.span);
    } else {
      most_keys_.insert(most_keys_.end(), static_cast<size_t>(config.n_head_kv), n_ctx);
    }
  }
}

uint64_t DecodeKvReads::bytes_at(int64_t pos) const {
  uint64_t keys = 0;
  for (int64_t most : most_keys_) keys += static_cast<uint64_t>(std::min(pos + 1, most));
  return keys * key_value_bytes_;
}

double DecodeKvReads::mean_bytes(int64_t depth, int64_t n_steps) const {
  double total = 0.0;
  for (int64_t pos = depth; pos < depth + n_steps; ++pos)
    total += static_cast<double>(bytes_at(pos));
  return n_steps > 0 ? total / static_cast<double>(n_steps) : 0.0;
}

std::vector<ThroughputResult> measure_throughput(
    const Model& model, const ThroughputConfig& cfg,
    const std::function<void(const std::string&)>& progress) {
  check_config(cfg);
  const ModelConfig& c = model.config();
  const int64_t max_depth = *std::max_element(cfg.depths.begin(), cfg.depths.end());
  const int64_t max_ctx = max_depth + std::max(cfg.n_prompt, cfg.n_gen);
  if (c.n_ctx_train > 0 && max_ctx > c.n_ctx_train) {
    progress(fmt::format("note: depth + test size {} exceeds the model's training context {}",
                         max_ctx, c.n_ctx_train));
  }
  std::mt19937_64 rng(cfg.seed);
  std::vector<ThroughputResult> results;
  const ModelIdentity identity = identity_of(c, model.file().metadata_hash());
  const double weight_bytes = decode_weight_bytes(model);
  // Every row's method is planned before any row is timed: a combination that fails at one N
  // (a streaming window with no room at a shallow depth) fails in seconds, not after the rows
  // before it have run for minutes.
  for (const AttentionMethod& method : cfg.methods) {
    // Options are checked at the run's largest N; a plan file's rules give spans at any N.
    check_attention_method(method, max_ctx);
    if (!method.plan_path.empty()) continue;  // read and checked at max_ctx below
    for (int64_t depth : cfg.depths) {
      if (cfg.n_prompt > 0) method_plan(method, identity, depth + cfg.n_prompt);
      if (cfg.n_gen > 0) method_plan(method, identity, depth + cfg.n_gen);
    }
  }
  for (const AttentionMethod& method : cfg.methods) {
    std::optional<SparsePlan> file_plan;
    if (!method.plan_path.empty()) file_plan = method_plan(method, identity, max_ctx);
    // One row: its own plan and cache for N = depth + test tokens, so a shallow row of a deep
    // run is not timed with windows (or a cache) sized for the deepest one.
    auto run = [&](int64_t depth, int batch, bool decode) {
      const int64_t n_ctx = depth + (decode ? cfg.n_gen : cfg.n_prompt);
      const std::optional<SparsePlan> plan =
          file_plan ? file_plan : method_plan(method, identity, n_ctx);
      auto cache = make_attention_cache(kv_shape(c, n_ctx, batch, cfg.kv_type), method, plan,
                                        kDefaultRingChunk);
      const double kv_read =
          DecodeKvReads(c, method, plan, n_ctx, cfg.kv_type).mean_bytes(depth, cfg.n_gen) * batch;
      const bool probe_int8 = !decode && cfg.probe_machine;
      const double int8_before = probe_int8 ? kernels::measure_int8_peak(cfg.n_threads).gops : 0;
      ThroughputResult r =
          decode ? time_decode(model, *cache, cfg, {depth, batch, weight_bytes + kv_read}, rng)
                 : time_prefill(model, *cache, cfg, {depth, 1}, rng);
      if (probe_int8) {
        r.int8_peak_gops = std::max(int8_before, kernels::measure_int8_peak(cfg.n_threads).gops);
        r.fraction_of_int8_peak = r.gflops / r.int8_peak_gops;
      }
      r.method = method_label(method, n_ctx);
      r.n_ctx = n_ctx;
      r.kv_type = cfg.kv_type;
      r.kv_cache_bytes = cache->bytes();
      r.kv_density = method_kv_density(method, plan, n_ctx);
      if (decode) r.kv_bytes_read_per_step = kv_read;
      progress(fmt::format("{} {} @ depth {} batch {}: {:.2f} tok/s", r.method, r.test, r.depth,
                           r.batch, r.tokens_per_second));
      results.push_back(std::move(r));
    };
    for (int64_t depth : cfg.depths) {
      if (cfg.n_prompt > 0) run(depth, 1, false);
      for (int batch : cfg.batches) {
        if (cfg.n_gen > 0) run(depth, batch, true);
      }
    }
  }
  return results;
}

double measure_sgemm_gflops(int n_threads) {
  constexpr int kN = 1024;
  std::vector<float> a(kN * kN, 0.5f), b(kN * kN, 0.25f), out(kN * kN);
  openblas_set_num_threads(n_threads);
  double best = 0.0;
  for (int rep = 0; rep < 4; ++rep) {
    auto start = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, kN, kN, kN, 1.0f, a.data(), kN, b.data(),
                kN, 0.0f, out.data(), kN);
    best = std::max(best, 2.0 * kN * kN * kN / elapsed(start) / 1e9);
  }
  return best;
}

std::string sgemm_kernel_name() {
  const char* name = openblas_get_corename();
  return name != nullptr ? std::string(name) : std::string("unknown");
}

}  // namespace moa
