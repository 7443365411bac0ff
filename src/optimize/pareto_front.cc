// Epsilon-constraint search over the profiled lengths' losses (see pareto_front.h).
#include "optimize/pareto_front.h"

#include <algorithm>
#include <cmath>

#include <spdlog/spdlog.h>

#include "util/error.h"

namespace moa {

bool dominates(const std::vector<double>& a, const std::vector<double>& b) {
  bool better = false;
  for (size_t i = 0; i < a.size(); ++i) {
    const double tol = 1e-12 * std::max(std::abs(a[i]), std::abs(b[i]));
    if (a[i] > b[i] + tol) return false;
    if (a[i] < b[i] - tol) better = true;
  }
  return better;
}

namespace {

// The profiled losses and the projected one: a plan that keeps more at the projected length is
// not dominated by one that only wins at the profiled lengths.
std::vector<double> with_projection(const Assignment& a) {
  std::vector<double> v = a.objectives;
  v.push_back(a.projected_loss);
  return v;
}

}  // namespace

std::vector<Assignment> non_dominated(const std::vector<Assignment>& all) {
  std::vector<Assignment> kept;
  for (size_t i = 0; i < all.size(); ++i) {
    bool drop = false;
    for (size_t j = 0; j < all.size() && !drop; ++j)
      drop = j != i && dominates(with_projection(all[j]), with_projection(all[i]));
    for (const Assignment& k : kept) drop = drop || with_projection(k) == with_projection(all[i]);
    if (!drop) kept.push_back(all[i]);
  }
  return kept;
}

std::vector<Assignment> solve_pareto_front(const AssignmentProblem& p, const ParetoSettings& s,
                                           const SolveProgress& progress) {
  const size_t k = p.losses.size();
  if (k == 0) fail("the profile has no lengths: nothing to optimise");
  if (s.main_objective >= k) fail("objective {} does not exist ({} lengths)", s.main_objective, k);
  if (s.points < 1) fail("{} Pareto points: expected at least 1", s.points);
  // Intervals per boxed objective, so that the grid has about `points` boxes.
  const auto intervals =
      k == 1 ? 0
             : std::max<int64_t>(
                   1, static_cast<int64_t>(std::floor(std::pow(static_cast<double>(s.points),
                                                               1.0 / static_cast<double>(k - 1)) +
                                                      1e-9)));
  int64_t boxes = k == 1 ? 0 : 1;
  for (size_t i = 1; i < k; ++i) boxes *= intervals;
  const auto total = static_cast<int64_t>(k) + boxes;
  int64_t done = 0;
  auto step = [&] {
    if (progress) progress(++done, total);
  };

  std::vector<Assignment> found;
  for (size_t obj = 0; obj < k; ++obj) {
    found.push_back(solve_min_loss(p, obj, s.milp));
    step();
  }
  std::vector<double> lo(k), hi(k);
  for (size_t j = 0; j < k; ++j) {
    lo[j] = found[j].objectives[j];
    hi[j] = lo[j];
    for (const Assignment& a : found) hi[j] = std::max(hi[j], a.objectives[j]);
  }
  std::vector<size_t> others;
  for (size_t j = 0; j < k; ++j) {
    if (j != s.main_objective) others.push_back(j);
  }
  for (int64_t box = 0; box < boxes; ++box) {
    std::vector<ObjectiveBound> bounds;
    int64_t code = box;
    for (size_t j : others) {
      const int64_t i = code % intervals;
      code /= intervals;
      const double width = (hi[j] - lo[j]) / static_cast<double>(intervals);
      bounds.push_back(
          {j, i + 1 == intervals ? hi[j] : lo[j] + width * static_cast<double>(i + 1)});
    }
    try {
      if (std::optional<Assignment> a = solve_assignment(p, s.main_objective, bounds, s.milp))
        found.push_back(std::move(*a));
    } catch (const Error& e) {  // one box without a plan in time does not spoil the front
      spdlog::warn("Pareto box {} of {}: {}", box + 1, boxes, e.what());
    }
    step();
  }
  std::vector<Assignment> front = non_dominated(found);
  std::stable_sort(front.begin(), front.end(), [&](const Assignment& a, const Assignment& b) {
    return a.objectives[s.main_objective] < b.objectives[s.main_objective];
  });
  return front;
}

}  // namespace moa
