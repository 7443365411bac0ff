// Orchestration of the optimizer stage (see plan_optimizer.h).
#include "optimize/plan_optimizer.h"

#include <algorithm>

#include "util/error.h"

namespace moa {
namespace {

std::vector<int64_t> profiled_lengths(const InfluenceProfile& profile) {
  std::vector<int64_t> out;
  for (const ProfiledLength& l : profile.lengths) out.push_back(l.length);
  return out;
}

size_t objective_index(const InfluenceProfile& profile, int64_t length) {
  if (length == 0) return profile.lengths.size() - 1;
  for (size_t i = 0; i < profile.lengths.size(); ++i) {
    if (profile.lengths[i].length == length) return i;
  }
  (void)profile.at_length(length);  // throws naming the profiled lengths
  return 0;
}

// The windows of the binary shape: the grid's positive alphas (or the one given), below N_min.
std::vector<int64_t> binary_windows(const RuleGrid& grid, int64_t window) {
  if (window > 0) return {window};
  std::vector<int64_t> out;
  for (const ElasticRule& r : grid.rules) {
    const auto w = static_cast<int64_t>(r.alpha);
    if (r.beta == 0.0 && w > 0 && w < grid.min_length) out.push_back(w);
  }
  if (out.empty()) fail("no window below length {} on the alpha grid", grid.min_length);
  return out;
}

SparsePlan plan_of(const InfluenceProfile& profile, const RuleGrid& grid, const Assignment& a,
                   const OptimizeOptions& o) {
  SparsePlan plan;
  plan.method = "moa";
  plan.model = profile.model;
  plan.sinks = profile.sinks;
  plan.profiled_lengths = profiled_lengths(profile);
  plan.density_budgets = o.budgets;
  plan.rules.assign(static_cast<size_t>(profile.model.n_layer), {});
  for (int64_t h = 0; h < static_cast<int64_t>(a.rule_of_head.size()); ++h) {
    plan.rules[static_cast<size_t>(h / profile.model.n_head_kv)].push_back(
        grid.rules[static_cast<size_t>(a.rule_of_head[static_cast<size_t>(h)])]);
  }
  return plan;
}

}  // namespace

RuleGrid optimizer_rules(const InfluenceProfile& profile, int64_t context_length,
                         const OptimizeOptions& o) {
  RuleGrid grid = candidate_rules(o.grid, profiled_lengths(profile), context_length);
  if (o.shape == PlanShape::kBinary) grid.rules = binary_rules(binary_windows(grid, o.window));
  return grid;
}

OptimizeResult optimize_plans(const InfluenceProfile& profile, int64_t context_length,
                              const OptimizeOptions& o, const SolveProgress& progress) {
  OptimizeResult result;
  result.grid = optimizer_rules(profile, context_length, o);
  result.objective = objective_index(profile, o.objective_length);
  const AssignmentProblem problem = assignment_problem(profile, result.grid, o.budgets,
                                                       o.min_density_ratio, o.max_rules_per_layer);
  result.projected_length = problem.projected_length;
  std::vector<Assignment> front;
  if (o.shape == PlanShape::kBinary) {
    front.push_back(solve_binary_shape(problem, result.objective));
    if (progress) progress(1, 1);
  } else {
    ParetoSettings settings = o.pareto;
    settings.main_objective = result.objective;
    front = solve_pareto_front(problem, settings, progress);
  }
  for (Assignment& a : front) {
    PlanCandidate c;
    c.plan = plan_of(profile, result.grid, a, o);
    for (const DensityBudget& b : o.budgets) c.densities.push_back(kv_density(c.plan, b.length));
    c.assignment = std::move(a);
    result.candidates.push_back(std::move(c));
  }
  return result;
}

size_t pick_candidate(const OptimizeResult& r) {
  if (r.candidates.empty()) fail("the optimizer found no plan to pick from");
  const bool validated =
      std::all_of(r.candidates.begin(), r.candidates.end(),
                  [](const PlanCandidate& c) { return c.validation_loss >= 0.0; });
  size_t best = 0;
  for (size_t i = 1; i < r.candidates.size(); ++i) {
    const PlanCandidate &c = r.candidates[i], &b = r.candidates[best];
    const bool better =
        validated ? c.validation_loss < b.validation_loss
                  : c.assignment.objectives[r.objective] < b.assignment.objectives[r.objective];
    if (better) best = i;
  }
  return best;
}

SparsePlan chosen_plan(const OptimizeResult& r, size_t chosen, int64_t validation_length) {
  SparsePlan plan = r.candidates.at(chosen).plan;
  plan.validation_length = validation_length;
  for (size_t i = 0; i < r.candidates.size(); ++i) {
    const PlanCandidate& c = r.candidates[i];
    plan.pareto.push_back({c.densities, c.assignment.objectives, c.validation_loss, i == chosen});
  }
  return plan;
}

}  // namespace moa
