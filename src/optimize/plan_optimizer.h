// `moa optimize` as a library: from an influence profile and density budgets to candidate
// plans (the Pareto front of the MILP, or the one full-or-window plan), then the pick among
// them (by validation loss when one is measured, else by the profiled objective) and the plan
// file that records the budgets, the profiled lengths and the front it came from.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "optimize/binary_shape.h"
#include "optimize/candidate_rules.h"
#include "optimize/pareto_front.h"
#include "profile/influence_profile.h"

namespace moa {

enum class PlanShape { kElastic, kBinary };

struct OptimizeOptions {
  RuleGridOptions grid;
  std::vector<DensityBudget> budgets;
  double min_density_ratio = 0.0;
  int64_t max_rules_per_layer = 0;
  int64_t objective_length = 0;  // 0: the longest profiled length
  ParetoSettings pareto;         // main_objective is set from objective_length
  PlanShape shape = PlanShape::kElastic;
  int64_t window = 0;  // binary shape: fixed window; 0: the best of the grid's alphas
};

struct PlanCandidate {
  SparsePlan plan;
  Assignment assignment;
  std::vector<double> densities;  // kv_density at each budget's length
  double validation_loss = -1.0;  // < 0: not measured
};

struct OptimizeResult {
  RuleGrid grid;
  size_t objective = 0;          // index into profile lengths
  int64_t projected_length = 0;  // budgeted length beyond the profiled ones (0: none)
  std::vector<PlanCandidate> candidates;
};

// The candidate rules `moa optimize --list-rules` prints.
RuleGrid optimizer_rules(const InfluenceProfile& profile, int64_t context_length,
                         const OptimizeOptions& options);

// Solves for the candidate plans. The profile must have been checked against the model.
OptimizeResult optimize_plans(const InfluenceProfile& profile, int64_t context_length,
                              const OptimizeOptions& options, const SolveProgress& progress);

// Index of the candidate with the least validation loss if every one was measured, else the
// least profiled loss at the objective length.
size_t pick_candidate(const OptimizeResult& result);

// The chosen plan with the front recorded (`validation_length` 0: not validated).
SparsePlan chosen_plan(const OptimizeResult& result, size_t chosen, int64_t validation_length);

}  // namespace moa
