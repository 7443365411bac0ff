// Full-or-window head selection (see binary_shape.h).
#include "optimize/binary_shape.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "util/error.h"

namespace moa {

std::vector<ElasticRule> binary_rules(const std::vector<int64_t>& windows) {
  std::vector<ElasticRule> rules = {{0.0, 1.0}};
  for (int64_t w : windows) {
    if (w < 1) fail("window {}: expected a positive number of tokens", w);
    rules.push_back({static_cast<double>(w), 0.0});
  }
  return rules;
}

namespace {

// How many heads may be full with window rule w; -1 when no count meets every budget.
int64_t full_heads_allowed(const AssignmentProblem& p, int64_t w) {
  int64_t allowed = p.heads();
  for (const DensityRow& d : p.densities) {
    const int64_t windowed = d.kept[static_cast<size_t>(w)];
    const int64_t extra = d.kept[0] - windowed;  // keys one head gains by going full
    const int64_t room = d.max_keys(p.heads()) - windowed * p.heads();
    if (room < 0) return -1;
    if (extra > 0) allowed = std::min(allowed, room / extra);
  }
  for (const DensityRow& d : p.densities) {  // the most full heads give the most density
    const int64_t keys =
        d.kept[static_cast<size_t>(w)] * (p.heads() - allowed) + d.kept[0] * allowed;
    if (p.min_density_ratio > 0.0 && keys < d.min_keys(p.heads(), p.min_density_ratio)) return -1;
  }
  return allowed;
}

}  // namespace

Assignment solve_binary_shape(const AssignmentProblem& p, size_t objective) {
  if (p.n_rules < 2) fail("a binary plan needs the full rule and at least one window");
  const std::vector<double> loss = p.cost(objective);  // profiled + projected
  std::optional<Assignment> best;
  double best_loss = std::numeric_limits<double>::infinity();
  for (int64_t w = 1; w < p.n_rules; ++w) {
    const int64_t full = full_heads_allowed(p, w);
    if (full < 0) continue;
    // Loss a head saves by going full, highest first.
    std::vector<int64_t> order(static_cast<size_t>(p.heads()));
    std::iota(order.begin(), order.end(), 0);
    auto saving = [&](int64_t h) {
      return loss[static_cast<size_t>(h * p.n_rules + w)] -
             loss[static_cast<size_t>(h * p.n_rules)];
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return saving(a) > saving(b); });
    Assignment a;
    a.rule_of_head.assign(static_cast<size_t>(p.heads()), w);
    for (int64_t i = 0; i < full; ++i)
      a.rule_of_head[static_cast<size_t>(order[static_cast<size_t>(i)])] = 0;
    a.objectives = p.objectives(a.rule_of_head);
    a.projected_loss = p.projected(a.rule_of_head);
    a.optimal = true;
    const double total = a.objectives[objective] + a.projected_loss;
    if (total < best_loss) {
      best_loss = total;
      best = std::move(a);
    }
  }
  if (!best) {
    const std::string why = explain_infeasible(p);
    fail("no full-or-window plan meets the density budgets: {}",
         why.empty() ? "every window exceeds a budget or misses its lower bound" : why);
  }
  return *best;
}

}  // namespace moa
