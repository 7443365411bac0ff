// CBC solve times of the optimizer's MILP on a realistic instance: a llama-1b-like shape (22
// layers x 4 KV heads, context 2048) profiled at 512 and 1024 tokens with moa compress's default
// candidate set (alpha step 128, 9 betas, N_max 2048), budgets at 512/1024/2048. The influence
// is synthetic but shaped like real profiles: per head a mix of a local decay (rate drawn
// log-uniformly) and a flat far part, so heads want spans from a few tokens to all. Compares the
// plain MILP with the tuned one (greedy warm start, dominated-rule pruning) in one run.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>

#include "optimize/pareto_front.h"
#include "optimize/plan_optimizer.h"

namespace moa {
namespace {

InfluenceProfile llama_1b_like_profile() {
  ModelIdentity id;
  id.architecture = "llama";
  id.n_layer = 22;
  id.n_head = 32;
  id.n_head_kv = 4;
  InfluenceProfile p = empty_profile(id, 32000, 64, "synthetic", {512, 1024});
  std::mt19937_64 rng(20261201);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<double> rate, far, scale;
  for (int64_t h = 0; h < id.n_layer * id.n_head_kv; ++h) {
    rate.push_back(std::pow(10.0, -3.5 + 3.0 * unit(rng)));  // 1e-3.5 .. 1e-0.5 per token
    far.push_back(unit(rng) < 0.2 ? 0.05 * unit(rng) : 1e-4 * unit(rng));
    scale.push_back(0.5 + unit(rng));
  }
  for (ProfiledLength& l : p.lengths) {
    l.samples = {0, 1, 2, 3, 4, 5, 6, 7};
    for (int64_t layer = 0; layer < id.n_layer; ++layer) {
      for (int64_t kv = 0; kv < id.n_head_kv; ++kv) {
        const auto h = static_cast<size_t>(layer * id.n_head_kv + kv);
        for (int64_t d = 0; d < l.length; ++d) {
          l.layers[static_cast<size_t>(layer)].at(kv, d) =
              scale[h] * (std::exp(-rate[h] * static_cast<double>(d)) + far[h]);
        }
      }
    }
  }
  return p;
}

OptimizeOptions options_at(double density, bool tuned) {
  OptimizeOptions o;
  o.grid.max_length = 2048;
  o.budgets = {{512, density}, {1024, density}, {2048, density}};
  o.pareto.milp.time_limit_s = 120.0;
  o.pareto.milp.warm_start = tuned;
  o.pareto.milp.prune_dominated = tuned;
  return o;
}

// One single-objective solve (loss at 1024), as each Pareto run starts with.
void BM_MilpSolve(benchmark::State& state) {
  const InfluenceProfile profile = llama_1b_like_profile();
  const double density = static_cast<double>(state.range(0)) / 100.0;
  const OptimizeOptions o = options_at(density, state.range(1) != 0);
  const RuleGrid grid = optimizer_rules(profile, 2048, o);
  const AssignmentProblem problem = assignment_problem(profile, grid, o.budgets, 0.0, 0);
  double loss = 0.0;
  bool optimal = true;
  for (auto _ : state) {
    const Assignment a = solve_min_loss(problem, 1, o.pareto.milp);
    loss = a.objectives[1];
    optimal = optimal && a.optimal;
  }
  state.counters["rules"] = static_cast<double>(grid.rules.size());
  state.counters["loss"] = loss;
  state.counters["optimal"] = optimal ? 1.0 : 0.0;
}
BENCHMARK(BM_MilpSolve)
    ->ArgNames({"density%", "tuned"})
    ->ArgsProduct({{25, 50}, {0, 1}})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The whole front `moa optimize` solves (2 single objectives + 8 boxes).
void BM_ParetoFront(benchmark::State& state) {
  const InfluenceProfile profile = llama_1b_like_profile();
  const double density = static_cast<double>(state.range(0)) / 100.0;
  const OptimizeOptions o = options_at(density, state.range(1) != 0);
  size_t points = 0;
  for (auto _ : state) points = optimize_plans(profile, 2048, o, {}).candidates.size();
  state.counters["points"] = static_cast<double>(points);
}
BENCHMARK(BM_ParetoFront)
    ->ArgNames({"density%", "tuned"})
    ->ArgsProduct({{25, 50}, {0, 1}})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace moa
