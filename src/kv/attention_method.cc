// Methods -> plans -> caches (see attention_method.h).
#include "kv/attention_method.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "kv/h2o_kv_cache.h"
#include "kv/kv_cache.h"
#include "kv/plan_masks.h"
#include "kv/static_kv_cache.h"
#include "plan/plan_io.h"
#include "util/error.h"
#include "util/input_error.h"

namespace moa {
namespace {

constexpr std::array<std::pair<AttentionKind, std::string_view>, 4> kKindNames = {{
    {AttentionKind::kDense, "dense"},
    {AttentionKind::kStreaming, "streaming"},
    {AttentionKind::kMoa, "moa"},
    {AttentionKind::kH2o, "h2o"},
}};

// Keys streaming keeps per head at n_ctx: round(D x N), sinks included, 1 .. N.
int64_t streaming_kept(double density, int64_t n_ctx) {
  return std::clamp<int64_t>(std::llround(density * static_cast<double>(n_ctx)), 1, n_ctx);
}

}  // namespace

std::string_view attention_kind_name(AttentionKind kind) {
  for (const auto& [k, name] : kKindNames) {
    if (k == kind) return name;
  }
  return "unknown";
}

AttentionKind parse_attention_kind(std::string_view name) {
  for (const auto& [kind, n] : kKindNames) {
    if (n == name) return kind;
  }
  fail_input("method", "'{}' is not an attention method (expected dense, streaming, moa or h2o)",
             name);
}

void check_attention_method(const AttentionMethod& m, int64_t n_ctx) {
  if (!m.plan_path.empty() && m.kind != AttentionKind::kMoa && m.kind != AttentionKind::kDense) {
    fail_input("plan", "a plan file runs method moa, not '{}'", attention_kind_name(m.kind));
  }
  if (!(m.density > 0.0 && m.density <= 1.0)) {
    fail_input("density",
               "{} is not a KV density: expected a number in (0, 1] (the fraction of "
               "the KV cache kept)",
               m.density);
  }
  if (m.kind == AttentionKind::kStreaming && (m.sinks < 0 || m.sinks > n_ctx)) {
    fail_input("sinks", "{} sinks: expected 0 .. the context of {} tokens", m.sinks, n_ctx);
  }
  if (m.kind == AttentionKind::kMoa && m.plan_path.empty()) {
    fail_input("plan", "method moa needs a plan file (none given)");
  }
}

int64_t streaming_window(const AttentionMethod& m, int64_t n_ctx) {
  // The density counts the sinks: G sinks + the window keep round(D x N) keys per head.
  const int64_t kept = streaming_kept(m.density, n_ctx);
  if (m.sinks >= kept) {
    fail_input("sinks",
               "{} sinks leave no room for a window: density {} keeps {} keys per head at N = {} "
               "(expected fewer sinks or a higher density)",
               m.sinks, m.density, kept, n_ctx);
  }
  return kept - m.sinks;
}

std::optional<SparsePlan> method_plan(const AttentionMethod& m, const ModelIdentity& model,
                                      int64_t n_ctx) {
  if (!m.plan_path.empty()) {
    SparsePlan plan = read_plan(m.plan_path);
    check_plan_matches(plan, model, m.plan_path);
    for (size_t layer = 0; layer < plan.rules.size(); ++layer) {
      band_masks(plan, static_cast<int64_t>(layer), n_ctx);  // throws on an invalid span at n_ctx
    }
    return plan;
  }
  if (m.kind == AttentionKind::kStreaming) {
    return uniform_plan(model, streaming_window(m, n_ctx), m.sinks);
  }
  return std::nullopt;
}

double method_kv_density(const AttentionMethod& m, const std::optional<SparsePlan>& plan,
                         int64_t n) {
  if (m.kind == AttentionKind::kH2o)
    return static_cast<double>(h2o_budget(m.density, n)) / static_cast<double>(n);
  return plan ? kv_density(*plan, n) : 1.0;
}

std::string method_label(const AttentionMethod& m, int64_t n_ctx) {
  if (m.kind == AttentionKind::kH2o) return fmt::format("h2o (density {})", m.density);
  if (!m.plan_path.empty()) return fmt::format("moa ({})", m.plan_path);
  if (m.kind == AttentionKind::kStreaming) {
    return fmt::format("streaming (window {}, {} sinks)", streaming_window(m, n_ctx), m.sinks);
  }
  return "dense";
}

std::unique_ptr<AttentionCache> make_attention_cache(const KvShape& shape, const AttentionMethod& m,
                                                     const std::optional<SparsePlan>& plan,
                                                     int64_t prefill_chunk) {
  if (m.kind == AttentionKind::kH2o) {
    return std::make_unique<H2oKvCache>(shape, h2o_budget(m.density, shape.n_ctx));
  }
  if (!plan) return std::make_unique<KvCache>(shape);
  return std::make_unique<StaticKvCache>(shape, *plan, prefill_chunk);
}

}  // namespace moa
