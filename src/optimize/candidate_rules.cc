// Candidate rules and the per-head prices of each (see candidate_rules.h).
#include "optimize/candidate_rules.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace moa {

RuleGrid candidate_rules(const RuleGridOptions& o, const std::vector<int64_t>& profiled,
                         int64_t context_length) {
  if (profiled.empty()) fail("the profile has no lengths: expected at least one profiled length");
  if (o.betas < 1) fail("beta grid of {} values: expected at least 1", o.betas);
  if (o.alpha_step < 0) fail("alpha step {}: expected a positive number of tokens", o.alpha_step);
  RuleGrid g;
  g.profile_max = *std::max_element(profiled.begin(), profiled.end());
  g.min_length =
      o.min_length > 0 ? o.min_length : *std::min_element(profiled.begin(), profiled.end());
  g.max_length = o.max_length > 0 ? o.max_length : std::max(context_length, g.profile_max);
  if (g.min_length > g.max_length) {
    fail("shortest length {} is above the longest length {} the plan must serve", g.min_length,
         g.max_length);
  }
  // A 16th of the longest profiled length (the reference's grid at 8K is an 8th): an 8th left
  // windows too coarse to spend a budget well at short lengths (stories260K at 50%: answer loss
  // 1.131 / 1.113 on held-back answers with a 16th, 1.122 / 1.142 with an 8th; docs/optimizer.md).
  g.alpha_step =
      o.alpha_step > 0 ? o.alpha_step : std::max<int64_t>(16, (g.profile_max / 16 + 8) / 16 * 16);
  const auto pmax = static_cast<double>(g.profile_max);
  const auto nmax = static_cast<double>(g.max_length);
  const auto nmin = static_cast<double>(g.min_length);
  for (int64_t k = -(g.min_length / g.alpha_step); k * g.alpha_step <= g.profile_max; ++k) {
    const auto alpha = static_cast<double>(k * g.alpha_step);
    for (int64_t b = 0; b < o.betas; ++b) {
      const double beta =
          o.betas == 1 ? 0.0 : static_cast<double>(b) / static_cast<double>(o.betas - 1);
      if (alpha + beta * pmax <= pmax && alpha + beta * nmax <= nmax && alpha + beta * nmin > 0) {
        g.rules.push_back({alpha, beta});
      }
    }
  }
  if (g.rules.empty()) {
    fail("no candidate rule is valid from length {} to {} (alpha step {}, {} betas)", g.min_length,
         g.max_length, g.alpha_step, o.betas);
  }
  return g;
}

int64_t DensityRow::max_keys(int64_t heads) const {
  return static_cast<int64_t>(std::floor(budget * static_cast<double>(length * heads) + 1e-9));
}

int64_t DensityRow::min_keys(int64_t heads, double min_ratio) const {
  return static_cast<int64_t>(
      std::ceil(min_ratio * budget * static_cast<double>(length * heads) - 1e-9));
}

double AssignmentProblem::chosen_sum(const std::vector<double>& per_rule,
                                     const std::vector<int64_t>& rule_of_head) const {
  double sum = 0.0;
  for (int64_t h = 0; h < heads(); ++h)
    sum += per_rule[static_cast<size_t>(h * n_rules + rule_of_head[static_cast<size_t>(h)])];
  return sum;
}

std::vector<double> AssignmentProblem::objectives(const std::vector<int64_t>& rule_of_head) const {
  std::vector<double> out;
  for (const std::vector<double>& loss : losses) out.push_back(chosen_sum(loss, rule_of_head));
  return out;
}

double AssignmentProblem::projected(const std::vector<int64_t>& rule_of_head) const {
  return projected_loss.empty() ? 0.0 : chosen_sum(projected_loss, rule_of_head);
}

std::vector<double> AssignmentProblem::cost(size_t objective) const {
  std::vector<double> c = losses.at(objective);
  for (size_t i = 0; i < projected_loss.size(); ++i) c[i] += projected_loss[i];
  return c;
}

double reach_growth(const InfluenceProfile& profile, int64_t layer, int64_t kv_head) {
  const auto n = profile.lengths.size();
  if (n < 2) return 1.0;
  const int64_t n1 = profile.lengths[n - 2].length, n2 = profile.lengths[n - 1].length;
  const int64_t s1 = profile.span_holding(n1, layer, kv_head, 0.9);
  const int64_t s2 = profile.span_holding(n2, layer, kv_head, 0.9);
  if (s1 <= 0 || s2 <= 0) return 0.0;
  const double growth = std::log(static_cast<double>(s2) / static_cast<double>(s1)) /
                        std::log(static_cast<double>(n2) / static_cast<double>(n1));
  return std::clamp(growth, 0.0, 1.0);
}

double project_influence(const InfluenceProfile& profile, int64_t layer, int64_t kv_head,
                         int64_t span, int64_t length, double growth) {
  const int64_t n2 = profile.lengths.back().length;
  const double scaled = static_cast<double>(std::max<int64_t>(span, 0)) *
                        std::pow(static_cast<double>(n2) / static_cast<double>(length), growth);
  return profile.masked_influence(n2, layer, kv_head, static_cast<int64_t>(scaled));
}

double AssignmentProblem::density(const std::vector<int64_t>& rule_of_head, size_t row) const {
  const DensityRow& d = densities.at(row);
  int64_t keys = 0;
  for (int64_t r : rule_of_head) keys += d.kept[static_cast<size_t>(r)];
  return static_cast<double>(keys) / static_cast<double>(d.length * heads());
}

AssignmentProblem assignment_problem(const InfluenceProfile& profile, const RuleGrid& grid,
                                     const std::vector<DensityBudget>& budgets,
                                     double min_density_ratio, int64_t max_rules_per_layer) {
  if (budgets.empty()) fail("no density budget: expected at least one (length, density)");
  if (min_density_ratio < 0.0 || min_density_ratio > 1.0)
    fail("minimum density ratio {}: expected a number in [0, 1]", min_density_ratio);
  if (max_rules_per_layer < 0)
    fail("{} distinct rules per layer: expected a positive number (0: no limit)",
         max_rules_per_layer);
  AssignmentProblem p;
  p.n_layer = profile.model.n_layer;
  p.n_head_kv = profile.model.n_head_kv;
  p.n_rules = static_cast<int64_t>(grid.rules.size());
  p.min_density_ratio = min_density_ratio;
  p.max_rules_per_layer = max_rules_per_layer;
  for (const DensityBudget& b : budgets) {
    if (!(b.density > 0.0 && b.density <= 1.0))
      fail("density budget {} at length {}: expected a number in (0, 1]", b.density, b.length);
    if (b.length < grid.min_length || b.length > grid.max_length) {
      fail("budgeted length {} is outside the lengths {}..{} the rules are valid for", b.length,
           grid.min_length, grid.max_length);
    }
    DensityRow row{b.length, b.density, {}};
    for (const ElasticRule& r : grid.rules)
      row.kept.push_back(kept_keys(b.length, r.span(b.length), profile.sinks));
    p.densities.push_back(std::move(row));
  }
  for (const ProfiledLength& l : profile.lengths) {
    if (l.length < grid.min_length) {
      fail("profiled length {} is below the shortest length {} the plan must serve", l.length,
           grid.min_length);
    }
    p.objective_lengths.push_back(l.length);
    std::vector<double> loss;
    loss.reserve(static_cast<size_t>(p.heads() * p.n_rules));
    for (int64_t layer = 0; layer < p.n_layer; ++layer) {
      for (int64_t kv = 0; kv < p.n_head_kv; ++kv) {
        for (const ElasticRule& r : grid.rules)
          loss.push_back(profile.masked_influence(l.length, layer, kv, r.span(l.length)));
      }
    }
    p.losses.push_back(std::move(loss));
  }
  const int64_t longest_budget =
      std::max_element(budgets.begin(), budgets.end(), [](const auto& a, const auto& b) {
        return a.length < b.length;
      })->length;
  if (longest_budget > profile.lengths.back().length) {
    p.projected_length = longest_budget;
    for (int64_t layer = 0; layer < p.n_layer; ++layer) {
      for (int64_t kv = 0; kv < p.n_head_kv; ++kv) {
        const double growth = reach_growth(profile, layer, kv);
        for (const ElasticRule& r : grid.rules) {
          p.projected_loss.push_back(project_influence(profile, layer, kv, r.span(longest_budget),
                                                       longest_budget, growth));
        }
      }
    }
  }
  return p;
}

std::string explain_infeasible(const AssignmentProblem& p) {
  for (const DensityRow& d : p.densities) {
    const auto [lo, hi] = std::minmax_element(d.kept.begin(), d.kept.end());
    const double scale = static_cast<double>(d.length);
    if (*lo * p.heads() > d.max_keys(p.heads())) {
      return fmt::format(
          "density budget {} at length {} is infeasible: the smallest KV density the candidate "
          "rules reach there is {:.4f} (sinks included)",
          d.budget, d.length, static_cast<double>(*lo) / scale);
    }
    if (*hi * p.heads() < d.min_keys(p.heads(), p.min_density_ratio)) {
      return fmt::format(
          "density band {:.4f}..{} at length {} is infeasible: the largest KV density the "
          "candidate rules reach there is {:.4f}",
          p.min_density_ratio * d.budget, d.budget, d.length, static_cast<double>(*hi) / scale);
    }
  }
  return "";
}

}  // namespace moa
