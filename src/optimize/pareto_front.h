// The Pareto front of per-length profiled losses by the epsilon-constraint method (METHOD.md
// s.4): solve each objective alone for the payoff table, split every other objective's range
// [its own optimum, its worst value among those solutions] into intervals, minimise the main
// objective inside each box of intervals, and keep the non-dominated plans.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "optimize/rule_milp.h"

namespace moa {

struct ParetoSettings {
  int64_t points = 8;         // boxes of the grid, about (points^(1/(K-1)) intervals each)
  size_t main_objective = 0;  // the objective minimised inside the boxes
  MilpSettings milp;
};

// Called after each MILP solve with the solves done and planned.
using SolveProgress = std::function<void(int64_t done, int64_t total)>;

// Non-dominated assignments, sorted by the main objective. Throws (explained) when the budgets
// are infeasible.
std::vector<Assignment> solve_pareto_front(const AssignmentProblem& problem,
                                           const ParetoSettings& settings,
                                           const SolveProgress& progress);

// True when a is no worse than b in every objective and better in one.
bool dominates(const std::vector<double>& a, const std::vector<double>& b);
// The assignments no other one dominates (one per distinct objective vector), in input order.
std::vector<Assignment> non_dominated(const std::vector<Assignment>& all);

}  // namespace moa
