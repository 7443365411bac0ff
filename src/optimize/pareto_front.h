// The Pareto front of per-length profiled losses by the epsilon-constraint method (METHOD.md
// s.4): solve each objective alone for the payoff table, split every other objective's range
// [its own optimum, its worst value among those solutions] into intervals, minimise the main
// objective with every other one at most the upper end of one of its intervals (each
// combination: a grid of epsilon constraints), and keep the non-dominated plans. Bounds are
// upper only: lower ends as well made CBC's solves minutes long on a 20-head model.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "optimize/rule_milp.h"

namespace moa {

struct ParetoSettings {
  int64_t points = 8;         // grid points, points^(1/(K-1)) intervals per bounded objective
  size_t main_objective = 0;  // the objective minimised at every grid point
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
// The assignments no other one dominates in their objectives and projected loss (one per
// distinct vector), in input order.
std::vector<Assignment> non_dominated(const std::vector<Assignment>& all);

}  // namespace moa
