// The profiling cost measurement (see profile_bench.h). Peak memory comes from /proc/self/status
// (VmHWM) after writing 5 to /proc/self/clear_refs, which resets the high-water mark to the
// current resident size (Linux >= 4.0), so each length's peak is its own.
#include "profile/profile_bench.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "profile/profiler.h"
#include "profile/sample_backward.h"
#include "util/error.h"

namespace moa {
namespace {

// A /proc/self/status field in bytes ("VmRSS:  1234 kB"), or -1.
int64_t status_bytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1)) * 1024;
  }
  return -1;
}

bool reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return static_cast<bool>(clear);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

ProfileCost measure_profile_cost(const Model& model, int64_t n, const ProfileBenchSettings& s) {
  const int n_threads = s.n_threads;
  const ModelConfig& c = model.config();
  constexpr int64_t kAnswer = 8;
  if (n < 16 || n > c.n_ctx_train) {
    fail("profile bench: length {} (expected 16 .. the model's context of {})", n, c.n_ctx_train);
  }
  std::vector<TokenId> tokens;
  for (int64_t i = 0; i <= n; ++i) {
    tokens.push_back(static_cast<TokenId>((i * 7919 + 13) % c.n_vocab));
  }
  const std::span<const TokenId> all(tokens);
  const std::span<const TokenId> prompt = all.first(static_cast<size_t>(n + 1 - kAnswer));
  const std::span<const TokenId> answer = all.last(kAnswer);

  ProfileCost cost;
  cost.n_tokens = n;
  // The profiler's own memory plan for a set of samples this long.
  ProfileOptions options;
  options.sinks = 0;
  options.n_threads = n_threads;
  options.exact_backward = s.exact_backward;
  options.memory_budget = s.memory_budget;
  const auto setup = std::chrono::steady_clock::now();
  BackwardSetup backward = prepare_backward(model, options, n);
  cost.setup_seconds = seconds_since(setup);
  cost.transposes_bytes = backward.transposes.bytes_held();
  cost.forward_seconds = cost.profile_seconds = std::numeric_limits<double>::infinity();
  for (int r = 0; r < std::max(1, s.repeats); ++r) {
    {
      KvCache cache(kv_shape(c, n, 1, kernels::KvType::kF32));
      const auto start = std::chrono::steady_clock::now();
      forward_tokens(model, cache, 0, all.first(static_cast<size_t>(n)), LogitsMode::kLast,
                     n_threads);
      cost.forward_seconds = std::min(cost.forward_seconds, seconds_since(start));
    }
    malloc_trim(0);  // the freed cache's pages must not count for, or hide, the profiler's
    cost.rss_before = status_bytes("VmRSS");
    const bool peak_reset = reset_peak_rss();
    const auto start = std::chrono::steady_clock::now();
    const SampleInfluence sample =
        backward_sample(model, prompt, answer, backward.options, &backward.transposes);
    cost.profile_seconds = std::min(cost.profile_seconds, seconds_since(start));
    if (sample.n_tokens != n) {
      fail("profile bench: ran {} positions, expected {}", sample.n_tokens, n);
    }
    cost.kept_attention = sample.kept_attention;
    cost.kept_ffn = sample.kept_ffn;
    const int64_t peak = peak_reset ? status_bytes("VmHWM") : -1;
    cost.peak_rss = std::max(cost.peak_rss, peak);
  }
  return cost;
}

}  // namespace moa
