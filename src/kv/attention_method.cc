// Methods -> plans -> caches (see attention_method.h).
#include "kv/attention_method.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "kv/h2o_kv_cache.h"
#include "kv/kv_cache.h"
#include "kv/static_kv_cache.h"
#include "plan/plan_io.h"
#include "util/error.h"

namespace moa {

void check_attention_method(const AttentionMethod& m, int64_t n_ctx) {
  if (!m.plan_path.empty() && m.method != "moa" && m.method != "dense") {
    fail("--plan: a plan file runs method moa, not '{}'", m.method);
  }
  if (m.method != "dense" && m.method != "streaming" && m.method != "moa" && m.method != "h2o") {
    fail("--method: '{}' is not a method (expected dense, streaming, moa or h2o)", m.method);
  }
  if (!(m.density > 0.0 && m.density <= 1.0)) {
    fail("--density: {} must be in (0, 1] (the fraction of the KV cache kept)", m.density);
  }
  if (m.method == "streaming" && (m.sinks < 0 || m.sinks > n_ctx)) {
    fail("--sinks: {} must be between 0 and the context of {} tokens", m.sinks, n_ctx);
  }
  if (m.method == "moa" && m.plan_path.empty()) fail("--method moa: give the plan with --plan");
}

std::optional<SparsePlan> method_plan(const AttentionMethod& m, const ModelIdentity& model,
                                      int64_t n_ctx) {
  if (!m.plan_path.empty()) {
    SparsePlan plan = read_plan(m.plan_path);
    check_plan_matches(plan, model, m.plan_path);
    for (size_t layer = 0; layer < plan.rules.size(); ++layer) {
      plan.band_masks(static_cast<int64_t>(layer), n_ctx);  // throws on an invalid span at n_ctx
    }
    return plan;
  }
  if (m.method == "streaming") {
    // The density counts the sinks: G sinks + the window keep round(D x N) keys per head.
    const int64_t kept =
        std::clamp<int64_t>(std::llround(m.density * static_cast<double>(n_ctx)), 1, n_ctx);
    if (m.sinks >= kept) {
      fail(
          "--sinks: {} sinks leave no room for a window: density {} keeps {} keys per head at N = "
          "{} (lower --sinks or raise --density)",
          m.sinks, m.density, kept, n_ctx);
    }
    return uniform_plan(model, kept - m.sinks, m.sinks);
  }
  return std::nullopt;
}

double method_kv_density(const AttentionMethod& m, const std::optional<SparsePlan>& plan,
                         int64_t n) {
  if (m.method == "h2o")
    return static_cast<double>(h2o_budget(m.density, n)) / static_cast<double>(n);
  return plan ? kv_density(*plan, n) : 1.0;
}

std::string method_label(const AttentionMethod& m, const std::optional<SparsePlan>& plan) {
  if (m.method == "h2o") return fmt::format("h2o (density {})", m.density);
  if (!plan) return "dense";
  if (!m.plan_path.empty()) return "moa (" + m.plan_path + ")";
  const auto window = static_cast<int64_t>(plan->rules.at(0).at(0).alpha);
  return "streaming (window " + std::to_string(window) + ", " + std::to_string(plan->sinks) +
         " sinks)";
}

std::unique_ptr<AttentionCache> make_attention_cache(const ModelConfig& config,
                                                     const AttentionMethod& m,
                                                     const std::optional<SparsePlan>& plan,
                                                     int64_t n_ctx, int n_seq, kernels::KvType type,
                                                     int64_t prefill_chunk) {
  if (m.method == "h2o") {
    return std::make_unique<H2oKvCache>(
        h2o_cache_shape(config, n_ctx, h2o_budget(m.density, n_ctx), n_seq, type));
  }
  if (!plan) return std::make_unique<KvCache>(kv_cache_shape(config, n_ctx, n_seq, type));
  return std::make_unique<StaticKvCache>(
      static_kv_cache_shape(config, n_ctx, prefill_chunk, n_seq, type), *plan);
}

}  // namespace moa
