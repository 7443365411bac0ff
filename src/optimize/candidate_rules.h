// The search space of the optimizer (METHOD.md s.1): elastic rules (alpha, beta) on a grid
// scaled to the lengths the plan serves, kept only when valid at every length from N_min to
// N_max, and the assignment problem they span: for each KV head and rule, the profiled loss at
// every profiled length (a suffix sum of the head's influence histogram) and, for each budgeted
// length, the keys the rule keeps (kept_keys, the figure kv_density averages).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "plan/plan.h"
#include "profile/influence_profile.h"

namespace moa {

struct RuleGridOptions {
  int64_t alpha_step = 0;  // 0: max profiled length / 16, rounded to a multiple of 16
  int64_t betas = 9;       // beta in {0, 1/(betas-1), ..., 1}
  int64_t min_length = 0;  // N_min; 0: the smallest profiled length
  int64_t max_length = 0;  // N_max; 0: the model's context
};

struct RuleGrid {
  int64_t alpha_step = 0;
  int64_t min_length = 0;
  int64_t max_length = 0;
  int64_t profile_max = 0;
  std::vector<ElasticRule> rules;
};

// alpha in {k * step : -N_min <= k * step <= N_profile_max} (always holding 0), beta on the
// grid, kept iff alpha + beta*N_pmax <= N_pmax, alpha + beta*N_max <= N_max and
// alpha + beta*N_min > 0. Throws when the options are out of range or no rule survives.
RuleGrid candidate_rules(const RuleGridOptions& options, const std::vector<int64_t>& profiled,
                         int64_t context_length);

// One density constraint: sum over heads of kept[rule] <= floor(budget * length * heads)
// (integer coefficients, so a solution meets kv_density <= budget exactly), and optionally
// >= min_ratio * budget likewise.
struct DensityRow {
  int64_t length = 0;
  double budget = 1.0;
  std::vector<int64_t> kept;  // [rule]: kept_keys(length, span, sinks), the same for every head

  int64_t max_keys(int64_t heads) const;
  int64_t min_keys(int64_t heads, double min_ratio) const;
};

// Choose one rule per KV head (heads layer-major: head = layer * n_head_kv + kv_head).
struct AssignmentProblem {
  int64_t n_layer = 0;
  int64_t n_head_kv = 0;
  int64_t n_rules = 0;
  std::vector<DensityRow> densities;
  double min_density_ratio = 0.0;   // 0: no lower bound
  int64_t max_rules_per_layer = 0;  // 0: no limit
  std::vector<int64_t> objective_lengths;
  std::vector<std::vector<double>> losses;  // [objective][head * n_rules + rule]
  // The loss each rule is projected to cause at projected_length, the longest budgeted length
  // when it is beyond every profiled one (else 0 and empty): no profile sees a rule there, and
  // without it a fixed window that covers every profiled length costs nothing, however narrow
  // it is at the longer length. [head * n_rules + rule]; project_influence says how.
  int64_t projected_length = 0;
  std::vector<double> projected_loss;

  int64_t heads() const { return n_layer * n_head_kv; }
  // Objective values of an assignment (rule index per head).
  std::vector<double> objectives(const std::vector<int64_t>& rule_of_head) const;
  // Its projected loss at projected_length (0 without one).
  double projected(const std::vector<int64_t>& rule_of_head) const;
  // What a solve for `objective` minimises, per head and rule: that profiled loss plus the
  // projected one.
  std::vector<double> cost(size_t objective) const;
  // KV density of an assignment at densities[row].length.
  double density(const std::vector<int64_t>& rule_of_head, size_t row) const;

 private:
  // Sum over heads of a [head * n_rules + rule] table at each head's chosen rule.
  double chosen_sum(const std::vector<double>& per_rule,
                    const std::vector<int64_t>& rule_of_head) const;
};

// How a head's reach grows with the input: e in [0, 1] with reach ~ N^e, fitted to the spans
// holding 90% of its influence at the two longest profiled lengths (0: a local head keeps its
// distances, 1: a head whose reach follows the input). One profiled length gives no growth to
// fit: 1.
double reach_growth(const InfluenceProfile& profile, int64_t layer, int64_t kv_head);

// The loss a rule's span at `length` (beyond the longest profiled length N2) would cause, read
// from the profile at N2: the span maps to span * (N2 / length)^growth there.
double project_influence(const InfluenceProfile& profile, int64_t layer, int64_t kv_head,
                         int64_t span, int64_t length, double growth);

// Prices every candidate rule of every KV head at each profiled length; budgets must be at
// lengths within [grid.min_length, grid.max_length].
AssignmentProblem assignment_problem(const InfluenceProfile& profile, const RuleGrid& grid,
                                     const std::vector<DensityBudget>& budgets,
                                     double min_density_ratio, int64_t max_rules_per_layer);

// Empty when every budget is reachable on its own; otherwise names the first length whose budget
// is below the smallest density the candidates reach there (or whose band [ratio*budget,
// budget] holds no achievable density), and that density.
std::string explain_infeasible(const AssignmentProblem& problem);

}  // namespace moa
