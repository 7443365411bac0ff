// DuoAttention's plan shape from the same profile: every KV head either keeps everything
// (alpha 0, beta 1) or its sinks plus one fixed window W (alpha W, beta 0). For one W, turning
// any head full costs the same keys at every length, so keeping full the heads whose window
// would hide the most profiled influence, as many as every budget allows, is optimal; W is the
// candidate window with the least loss (or the one given).
#pragma once

#include <cstdint>
#include <vector>

#include "optimize/rule_milp.h"

namespace moa {

// Rules of a binary problem: the full rule first, then (W, 0) for each window.
std::vector<ElasticRule> binary_rules(const std::vector<int64_t>& windows);

// Picks, on a problem built from binary_rules, the windowed rule and the full heads that
// minimise objective `objective` within every budget. Throws naming the budget when even the
// all-windowed plan exceeds it for every window.
Assignment solve_binary_shape(const AssignmentProblem& problem, size_t objective);

}  // namespace moa
