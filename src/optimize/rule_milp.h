// The MILP of METHOD.md s.4 solved with COIN-OR CBC (C API): binaries x[h][r], one rule per KV
// head; density rows with integer coefficients (kept keys) at every budgeted length; optional
// lower density bound and at most K distinct rules per layer (binaries y[l][r] >= x[h][r],
// sum_r y[l][r] <= K); minimise one profiled-length loss, the others optionally bounded above
// (the epsilon constraints of the Pareto search). Every solve adds the projected loss at a
// budgeted length beyond the profiled ones to its objective (AssignmentProblem::cost). Losses are
// scaled per objective so CBC's absolute tolerances mean the same at any profile magnitude.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "optimize/candidate_rules.h"

namespace moa {

struct MilpSettings {
  double time_limit_s = 60.0;  // per solve
  double gap = 1e-4;           // relative optimality gap at which CBC stops
  // Without a lower density bound or a rule limit (both make them unsafe): give CBC a greedy
  // solution to start from, and drop per head the rules another one beats on every constraint
  // and objective (same optimum, a smaller tree; see bench/milp_bench.cc).
  bool warm_start = true;
  bool prune_dominated = true;
};

// Keep objective `objective` at most `upper` (unscaled loss units): an epsilon constraint.
struct ObjectiveBound {
  size_t objective = 0;
  double upper = 0.0;
};

struct Assignment {
  std::vector<int64_t> rule_of_head;  // [layer * n_head_kv + kv_head]
  std::vector<double> objectives;     // loss at each problem.objective_lengths
  double projected_loss = 0.0;        // at problem.projected_length (0: none)
  bool optimal = false;               // proven within the gap (false: time limit hit)
  double gap = 0.0;                   // relative gap between the solution and CBC's bound
};

// Minimises objective `objective`; nullopt when CBC proves the constraints infeasible. Throws
// when CBC stops (time limit, numerical trouble) without a feasible point.
std::optional<Assignment> solve_assignment(const AssignmentProblem& problem, size_t objective,
                                           std::span<const ObjectiveBound> boxes,
                                           const MilpSettings& settings);

// The problem's single optimum at `objective`, with infeasibility explained (explain_infeasible,
// or the budgets jointly) as a moa::Error.
Assignment solve_min_loss(const AssignmentProblem& problem, size_t objective,
                          const MilpSettings& settings);

}  // namespace moa
