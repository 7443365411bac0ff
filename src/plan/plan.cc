// Plan arithmetic: spans, masks, densities, and the checks that a plan fits a model.
#include "plan/plan.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "util/error.h"
#include "util/input_error.h"

namespace moa {

int64_t ElasticRule::span(int64_t n) const {
  const double raw = alpha + beta * static_cast<double>(n);
  if (std::isnan(raw) || raw < 0.0) {
    fail("rule (alpha {}, beta {}) gives span {} at length {}: spans must be non-negative numbers",
         alpha, beta, raw, n);
  }
  const double rounded = std::floor(raw + 1e-9);
  if (rounded >= static_cast<double>(n)) return std::max<int64_t>(n, kMinSpan);
  return std::max<int64_t>(static_cast<int64_t>(rounded), kMinSpan);
}

namespace {
SparsePlan plan_with_rule(const ModelIdentity& model, const ElasticRule& rule, int64_t sinks,
                          const char* method) {
  SparsePlan plan;
  plan.method = method;
  plan.model = model;
  plan.sinks = sinks;
  plan.rules.assign(model.n_layer, std::vector<ElasticRule>(model.n_head_kv, rule));
  return plan;
}
}  // namespace

SparsePlan uniform_plan(const ModelIdentity& model, int64_t window, int64_t sinks) {
  if (window < 1) fail_input("window", "{} tokens: expected a window of at least 1", window);
  if (sinks < 0) fail_input("sinks", "{} sinks: expected 0 or more", sinks);
  return plan_with_rule(model, {static_cast<double>(window), 0.0}, sinks, "uniform");
}

SparsePlan dense_plan(const ModelIdentity& model) {
  return plan_with_rule(model, {0.0, 1.0}, 0, "dense");
}

void check_identity_matches(const ModelIdentity& p, const ModelIdentity& model,
                            const std::string& name, std::string_view what) {
  if (p.architecture != model.architecture) {
    fail("{}: {} is for architecture '{}', the model is '{}'", name, what, p.architecture,
         model.architecture);
  }
  if (p.n_layer != model.n_layer)
    fail("{}: {} has {} layers, the model has {}", name, what, p.n_layer, model.n_layer);
  if (p.n_head != model.n_head || p.n_head_kv != model.n_head_kv) {
    fail("{}: {} is for {} heads ({} KV heads), the model has {} ({})", name, what, p.n_head,
         p.n_head_kv, model.n_head, model.n_head_kv);
  }
  if (!p.hash.empty() && !model.hash.empty() && p.hash != model.hash) {
    fail("{}: {} was made for model hash {}, this model's hash is {}", name, what, p.hash,
         model.hash);
  }
}

void check_plan_matches(const SparsePlan& plan, const ModelIdentity& model,
                        const std::string& name) {
  check_identity_matches(plan.model, model, name, "plan");
}

void validate_plan(const SparsePlan& plan, const std::string& name) {
  if (plan.sinks < 0) fail("{}: sinks: {} must not be negative", name, plan.sinks);
  if (static_cast<int64_t>(plan.rules.size()) != plan.model.n_layer) {
    fail("{}: rules: {} layers, but model.n_layer is {}", name, plan.rules.size(),
         plan.model.n_layer);
  }
  for (size_t l = 0; l < plan.rules.size(); ++l) {
    if (static_cast<int64_t>(plan.rules[l].size()) != plan.model.n_head_kv) {
      fail("{}: rules[{}]: {} KV heads, but model.n_head_kv is {}", name, l, plan.rules[l].size(),
           plan.model.n_head_kv);
    }
    for (size_t h = 0; h < plan.rules[l].size(); ++h) {
      const ElasticRule& r = plan.rules[l][h];
      if (!std::isfinite(r.alpha) || !std::isfinite(r.beta)) {
        fail("{}: rules[{}][{}]: alpha {} and beta {} must be finite numbers", name, l, h, r.alpha,
             r.beta);
      }
      if (r.beta < 0.0 || r.beta > 1.0)
        fail("{}: rules[{}][{}]: beta {} is outside [0, 1]", name, l, h, r.beta);
    }
  }
  for (const DensityBudget& b : plan.density_budgets) {
    if (!(b.density > 0.0 && b.density <= 1.0) || b.length < 1) {
      fail("{}: density_budgets: density {} at length {} must be in (0, 1] at a positive length",
           name, b.density, b.length);
    }
  }
}

int64_t kept_keys(int64_t n, int64_t span, int64_t sinks) {
  return std::min(n, std::max<int64_t>(0, sinks) + span);
}

double kv_density(const SparsePlan& plan, int64_t n) {
  double sum = 0.0;
  int64_t heads = 0;
  for (const auto& layer : plan.rules) {
    for (const ElasticRule& r : layer) {
      sum += static_cast<double>(kept_keys(n, r.span(n), plan.sinks)) / static_cast<double>(n);
      ++heads;
    }
  }
  return heads == 0 ? 1.0 : sum / heads;
}

namespace {

// Visible (query, key) pairs in closed form, wide enough for any int64 length (n^2 / 2 is not).
// Query i sees keys 0..i while i < S; after that its band of S keys plus the min(G, i+1-S) sinks
// left of the band: sum_{i<min(S,n)} (i+1) + sum_{j=1}^{n-S} (S + min(G, j)).
unsigned __int128 visible_pair_count(int64_t n, int64_t span, int64_t sinks) {
  if (n < 0 || span < 0 || sinks < 0) {
    fail("visible pairs: length {}, span {} and sinks {} must not be negative", n, span, sinks);
  }
  using Wide = unsigned __int128;
  auto triangle = [](Wide k) { return k * (k + 1) / 2; };  // 1 + 2 + ... + k
  const Wide full = triangle(static_cast<Wide>(std::min(span, n)));
  const auto rest = static_cast<Wide>(std::max<int64_t>(0, n - span));  // queries past the band
  const auto g = static_cast<Wide>(sinks), s = static_cast<Wide>(span);
  const Wide sink_keys = g >= rest ? triangle(rest) : triangle(g) + (rest - g) * g;
  return full + rest * s + sink_keys;
}

}  // namespace

int64_t visible_pairs(int64_t n, int64_t span, int64_t sinks) {
  const unsigned __int128 count = visible_pair_count(n, span, sinks);
  if (count > static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max())) {
    fail("visible pairs: the count at length {} does not fit in 64 bits", n);
  }
  return static_cast<int64_t>(count);
}

double causal_area_density(const SparsePlan& plan, int64_t n) {
  const auto n_wide = static_cast<long double>(n);
  const long double area = n_wide * (n_wide + 1.0L) / 2.0L;
  long double sum = 0.0L;
  int64_t heads = 0;
  for (const auto& layer : plan.rules) {
    for (const ElasticRule& r : layer) {
      sum += static_cast<long double>(visible_pair_count(n, r.span(n), plan.sinks)) / area;
      ++heads;
    }
  }
  return heads == 0 ? 1.0 : static_cast<double>(sum / static_cast<long double>(heads));
}

}  // namespace moa
