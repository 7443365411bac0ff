// The optimizer against brute force: on small random profiles the MILP's optimum equals the
// best of every assignment (with a lower density bound and a distinct-rules limit too), plans
// meet their budgets exactly, the Pareto front holds no dominated point and reaches every
// single-objective optimum, the full-or-window shape keeps the most influential heads full, and
// bad inputs give one clear error.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <set>

#include "optimize/plan_optimizer.h"
#include "support/assets.h"
#include "util/error.h"

namespace moa {
namespace {

using test::error_of;

// 2 layers x 2 KV heads, lengths 64 and 128, 4 sinks; influence decaying with distance at a
// random rate per head (some heads look far, some near).
InfluenceProfile random_profile(uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  InfluenceProfile p = empty_profile({"llama", 2, 4, 2, ""}, 32, 4, "synthetic", {64, 128});
  for (ProfiledLength& l : p.lengths) {
    l.samples = {0};
    for (kernels::InfluenceHistogram& h : l.layers) {
      for (int64_t kv = 0; kv < 2; ++kv) {
        const double rate = 0.002 + 0.1 * unit(rng);
        for (int64_t d = 0; d < l.length; ++d)
          h.at(kv, d) = std::exp(-rate * d) * (0.5 + unit(rng));
      }
    }
  }
  return p;
}

// 9 rules: alpha in {-32..128} step 32, beta in {0, 1/2, 1}, valid from 64 to 256.
RuleGrid small_grid() { return candidate_rules({32, 3, 0, 256}, {64, 128}, 256); }

struct BruteForce {
  double best = std::numeric_limits<double>::infinity();
  int64_t feasible = 0;
};

bool meets_constraints(const AssignmentProblem& p, const std::vector<int64_t>& a) {
  for (const DensityRow& d : p.densities) {
    int64_t keys = 0;
    for (int64_t r : a) keys += d.kept[static_cast<size_t>(r)];
    if (keys > d.max_keys(p.heads())) return false;
    if (p.min_density_ratio > 0 && keys < d.min_keys(p.heads(), p.min_density_ratio)) return false;
  }
  if (p.max_rules_per_layer > 0) {
    for (int64_t l = 0; l < p.n_layer; ++l) {
      std::set<int64_t> used(a.begin() + l * p.n_head_kv, a.begin() + (l + 1) * p.n_head_kv);
      if (static_cast<int64_t>(used.size()) > p.max_rules_per_layer) return false;
    }
  }
  return true;
}

// Calls visit(assignment) for every one of n_rules^heads assignments.
void for_each_assignment(const AssignmentProblem& p,
                         const std::function<void(const std::vector<int64_t>&)>& visit) {
  std::vector<int64_t> a(static_cast<size_t>(p.heads()), 0);
  while (true) {
    visit(a);
    size_t i = 0;
    while (i < a.size() && ++a[i] == p.n_rules) a[i++] = 0;
    if (i == a.size()) return;
  }
}

BruteForce brute_force(const AssignmentProblem& p, size_t objective) {
  BruteForce b;
  for_each_assignment(p, [&](const std::vector<int64_t>& a) {
    if (!meets_constraints(p, a)) return;
    ++b.feasible;
    b.best = std::min(b.best, p.objectives(a)[objective] + p.projected(a));
  });
  return b;
}

const MilpSettings kExact{60.0, 0.0};

TEST(RuleMilp, OptimumEqualsBruteForceOnRandomInstances) {
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    const InfluenceProfile profile = random_profile(seed);
    const RuleGrid grid = small_grid();
    ASSERT_EQ(grid.rules.size(), 9u);
    for (double ratio : {0.0, 0.9}) {
      for (int64_t k : {0, 1, 2}) {
        const double budget = 0.3 + 0.1 * seed;
        // Odd seeds also budget 256, beyond the profiled lengths: the projected loss joins in.
        std::vector<DensityBudget> budgets = {{64, budget}, {128, budget}};
        if (seed % 2 == 1) budgets.push_back({256, budget});
        const AssignmentProblem p = assignment_problem(profile, grid, budgets, ratio, k);
        ASSERT_EQ(p.projected_length, seed % 2 == 1 ? 256 : 0);
        for (size_t obj = 0; obj < 2; ++obj) {
          const BruteForce expected = brute_force(p, obj);
          SCOPED_TRACE(testing::Message() << "seed " << seed << " ratio " << ratio << " K " << k
                                          << " objective " << obj);
          if (expected.feasible == 0) {
            EXPECT_NE(error_of([&] { solve_min_loss(p, obj, kExact); }).find("budget"),
                      std::string::npos);
            continue;
          }
          const Assignment a = solve_min_loss(p, obj, kExact);
          EXPECT_TRUE(a.optimal);
          EXPECT_TRUE(meets_constraints(p, a.rule_of_head));
          EXPECT_NEAR(a.objectives[obj] + a.projected_loss, expected.best,
                      1e-9 * std::max(1.0, expected.best));
        }
      }
    }
  }
}

// The warm start and the dropped dominated rules change how CBC gets there, never where: with
// an epsilon box on the other length's loss, tuned and plain solves both equal brute force.
TEST(RuleMilp, TunedSolveEqualsBruteForceUnderEpsilonBoxes) {
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    const InfluenceProfile profile = random_profile(seed);
    const double budget = 0.3 + 0.1 * seed;
    const AssignmentProblem p =
        assignment_problem(profile, small_grid(), {{64, budget}, {128, budget}}, 0.0, 0);
    const BruteForce free_best = brute_force(p, 1);
    if (free_best.feasible == 0) continue;
    // Box loss@64 to the middle of its range over the assignments loss@128 likes.
    const Assignment unboxed = solve_min_loss(p, 1, kExact);
    const double upper = 0.5 * (unboxed.objectives[0] + brute_force(p, 0).best);
    const std::vector<ObjectiveBound> box = {{0, upper}};
    double expected = std::numeric_limits<double>::infinity();
    for_each_assignment(p, [&](const std::vector<int64_t>& a) {
      const std::vector<double> o = p.objectives(a);
      if (meets_constraints(p, a) && o[0] <= upper) expected = std::min(expected, o[1]);
    });
    for (bool tuned : {false, true}) {
      SCOPED_TRACE(testing::Message() << "seed " << seed << " tuned " << tuned);
      MilpSettings settings = kExact;
      settings.warm_start = settings.prune_dominated = tuned;
      const std::optional<Assignment> a = solve_assignment(p, 1, box, settings);
      ASSERT_TRUE(a.has_value());
      EXPECT_TRUE(meets_constraints(p, a->rule_of_head));
      EXPECT_LE(a->objectives[0], upper * (1 + 1e-9));
      EXPECT_NEAR(a->objectives[1], expected, 1e-9 * std::max(1.0, expected));
    }
  }
}

// Layer 0 KV head 0 reaches back to its farthest keys at every length (its reach grows with N);
// the other heads look 2 tokens back at every length. Lengths 64 and 128, 4 sinks.
InfluenceProfile growing_and_local_profile() {
  InfluenceProfile p = empty_profile({"llama", 2, 4, 2, ""}, 32, 4, "synthetic", {64, 128});
  for (ProfiledLength& l : p.lengths) {
    l.samples = {0};
    for (int64_t layer = 0; layer < 2; ++layer) {
      for (int64_t kv = 0; kv < 2; ++kv) {
        const int64_t d = layer == 0 && kv == 0 ? l.length - 8 : 2;
        l.layers[static_cast<size_t>(layer)].at(kv, d) = 1.0;
      }
    }
  }
  return p;
}

TEST(CandidateRules, ProjectedLossFollowsEachHeadsGrowthOfReach) {
  const InfluenceProfile profile = growing_and_local_profile();
  // Growing head: reach 57 at 64, 121 at 128, so e = 1 and a span S at 256 counts as S / 2 at
  // 128, where the influence sits at distance 120.
  const double growing = reach_growth(profile, 0, 0), local = reach_growth(profile, 1, 1);
  EXPECT_DOUBLE_EQ(growing, 1.0);
  EXPECT_DOUBLE_EQ(local, 0.0);
  EXPECT_DOUBLE_EQ(project_influence(profile, 0, 0, 256, 256, growing), 0.0);
  EXPECT_DOUBLE_EQ(project_influence(profile, 0, 0, 242, 256, growing), 0.0);
  EXPECT_DOUBLE_EQ(project_influence(profile, 0, 0, 240, 256, growing), 1.0);
  EXPECT_DOUBLE_EQ(project_influence(profile, 0, 0, 128, 256, growing), 1.0);
  // Local head: reach 3 at both lengths, e = 0: a span keeps its size.
  EXPECT_DOUBLE_EQ(project_influence(profile, 1, 1, 3, 4096, local), 0.0);
  EXPECT_DOUBLE_EQ(project_influence(profile, 1, 1, 2, 4096, local), 1.0);
}

// A window of 128 covers the growing head at 64 and 128 exactly like full attention does; only
// the projection at the budgeted 256 tells them apart, and the plan keeps the head full.
TEST(PlanOptimizer, KeepsAGrowingHeadFullBeyondTheProfiledLengths) {
  const InfluenceProfile profile = growing_and_local_profile();
  OptimizeOptions o;
  o.grid = {32, 3, 0, 256};
  o.budgets = {{64, 0.9}, {128, 0.9}, {256, 0.4}};
  o.pareto.points = 2;
  const OptimizeResult r = optimize_plans(profile, 256, o, nullptr);
  EXPECT_EQ(r.projected_length, 256);
  ASSERT_FALSE(r.candidates.empty());
  for (const PlanCandidate& c : r.candidates) {
    EXPECT_EQ(c.plan.rules[0][0], (ElasticRule{0.0, 1.0}));
    EXPECT_DOUBLE_EQ(c.assignment.projected_loss, 0.0);
    EXPECT_LE(kv_density(c.plan, 256), 0.4);
  }
  // Budgets only at profiled lengths: nothing is projected.
  o.budgets = {{64, 0.9}, {128, 0.9}};
  EXPECT_EQ(optimize_plans(profile, 256, o, nullptr).projected_length, 0);
}

TEST(PlanOptimizer, PlansMeetTheirBudgetsExactly) {
  const InfluenceProfile profile = random_profile(7);
  OptimizeOptions o;
  o.grid = {16, 9, 0, 256};
  o.budgets = {{64, 0.55}, {128, 0.4}, {256, 0.3}};
  o.pareto.points = 6;
  const OptimizeResult r = optimize_plans(profile, 256, o, nullptr);
  ASSERT_FALSE(r.candidates.empty());
  for (const PlanCandidate& c : r.candidates) {
    for (size_t i = 0; i < o.budgets.size(); ++i) {
      const DensityBudget& b = o.budgets[i];
      int64_t keys = 0;
      for (const auto& layer : c.plan.rules) {
        for (const ElasticRule& rule : layer) keys += kept_keys(b.length, rule.span(b.length), 4);
      }
      EXPECT_LE(static_cast<double>(keys), b.density * static_cast<double>(b.length * 4));
      EXPECT_LE(kv_density(c.plan, b.length), b.density + 1e-15);
      EXPECT_DOUBLE_EQ(c.densities[i], kv_density(c.plan, b.length));
    }
    EXPECT_EQ(c.plan.sinks, 4);
    EXPECT_EQ(c.plan.profiled_lengths, (std::vector<int64_t>{64, 128}));
  }
}

TEST(ParetoFront, HoldsNoDominatedPointAndReachesEachSingleOptimum) {
  for (uint32_t seed = 11; seed <= 14; ++seed) {
    const InfluenceProfile profile = random_profile(seed);
    const AssignmentProblem p =
        assignment_problem(profile, small_grid(), {{64, 0.6}, {128, 0.5}}, 0.0, 0);
    int64_t solves = 0;
    const std::vector<Assignment> front =
        solve_pareto_front(p, {5, 1, kExact}, [&](int64_t done, int64_t total) {
          solves = done;
          EXPECT_EQ(total, 2 + 5);
        });
    EXPECT_EQ(solves, 7);
    ASSERT_FALSE(front.empty());
    for (const Assignment& a : front) {
      for (const Assignment& b : front) EXPECT_FALSE(dominates(a.objectives, b.objectives));
    }
    for (size_t obj = 0; obj < 2; ++obj) {
      double best = std::numeric_limits<double>::infinity();
      for (const Assignment& a : front) best = std::min(best, a.objectives[obj]);
      EXPECT_NEAR(best, brute_force(p, obj).best, 1e-9);
    }
    for (size_t i = 1; i < front.size(); ++i)  // sorted by the main objective
      EXPECT_LE(front[i - 1].objectives[1], front[i].objectives[1]);
  }
}

TEST(ParetoFront, NonDominatedFilterDropsDominatedAndRepeatedPoints) {
  auto point = [](std::vector<double> v) {
    Assignment a;
    a.objectives = std::move(v);
    return a;
  };
  const std::vector<Assignment> kept =
      non_dominated({point({1, 3}), point({2, 2}), point({2, 3}), point({1, 3}), point({3, 1})});
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[0].objectives, (std::vector<double>{1, 3}));
  EXPECT_EQ(kept[1].objectives, (std::vector<double>{2, 2}));
  EXPECT_EQ(kept[2].objectives, (std::vector<double>{3, 1}));
}

TEST(BinaryShape, MeetsTheBudgetAndKeepsTheMostInfluentialHeadsFull) {
  InfluenceProfile profile = empty_profile({"llama", 2, 4, 2, ""}, 32, 4, "synthetic", {64, 128});
  // Head h hides (h + 1)^2 per distant key: head 3 (layer 1, kv 1) matters most.
  for (ProfiledLength& l : profile.lengths) {
    l.samples = {0};
    for (int64_t layer = 0; layer < 2; ++layer) {
      for (int64_t kv = 0; kv < 2; ++kv) {
        for (int64_t d = 0; d < l.length; ++d)
          l.layers[static_cast<size_t>(layer)].at(kv, d) = std::pow(layer * 2 + kv + 1.0, 2);
      }
    }
  }
  OptimizeOptions o;
  o.shape = PlanShape::kBinary;
  o.window = 16;
  o.budgets = {{128, 0.6}};
  const OptimizeResult r = optimize_plans(profile, 256, o, nullptr);
  ASSERT_EQ(r.candidates.size(), 1u);
  const SparsePlan& plan = r.candidates[0].plan;
  EXPECT_LE(kv_density(plan, 128), 0.6);
  // Window keeps 4 + 16 = 20 of 128 keys; full keeps 128: at most 2 full heads fit 0.6 * 512.
  EXPECT_EQ(plan.rules[1][1], (ElasticRule{0.0, 1.0}));
  EXPECT_EQ(plan.rules[1][0], (ElasticRule{0.0, 1.0}));
  EXPECT_EQ(plan.rules[0][0], (ElasticRule{16.0, 0.0}));
  EXPECT_EQ(plan.rules[0][1], (ElasticRule{16.0, 0.0}));
  // Without a fixed window, the best window of the grid under the budget is chosen.
  o.window = 0;
  o.grid.alpha_step = 16;
  const OptimizeResult free = optimize_plans(profile, 256, o, nullptr);
  EXPECT_LE(kv_density(free.candidates[0].plan, 128), 0.6);
  EXPECT_LE(free.candidates[0].assignment.objectives[1], r.candidates[0].assignment.objectives[1]);
}

TEST(PlanOptimizer, InfeasibleBudgetNamesTheLengthAndTheLeastDensity) {
  const InfluenceProfile profile = random_profile(3);
  OptimizeOptions o;
  o.grid = {32, 3, 0, 256};
  o.budgets = {{64, 0.6}, {128, 0.1}};
  // The shortest rule keeps 4 sinks + 32 keys at 128 (alpha 32, beta 0): 0.28125.
  EXPECT_EQ(error_of([&] { optimize_plans(profile, 256, o, nullptr); }),
            "density budget 0.1 at length 128 is infeasible: the smallest KV density the candidate "
            "rules reach there is 0.2812 (sinks included)");
  o.shape = PlanShape::kBinary;
  o.window = 48;
  o.budgets = {{128, 0.1}};
  const std::string binary = error_of([&] { optimize_plans(profile, 256, o, nullptr); });
  EXPECT_EQ(binary.rfind("no full-or-window plan meets the density budgets: density budget 0.1 "
                         "at length 128 is infeasible",
                         0),
            0u)
      << binary;
}

TEST(CandidateRules, FollowTheGridAndTheValidityFilters) {
  const RuleGrid g = candidate_rules({0, 9, 0, 0}, {512, 1024, 2048}, 4096);
  EXPECT_EQ(g.alpha_step, 128);  // 2048 / 16
  EXPECT_EQ(g.min_length, 512);
  EXPECT_EQ(g.max_length, 4096);
  for (const ElasticRule& r : g.rules) {
    EXPECT_LE(r.alpha + r.beta * 2048, 2048);
    EXPECT_LE(r.alpha + r.beta * 4096, 4096);
    EXPECT_GT(r.alpha + r.beta * 512, 0);
    EXPECT_EQ(std::fmod(r.alpha, 128.0), 0.0);
  }
  EXPECT_NE(std::find(g.rules.begin(), g.rules.end(), ElasticRule{0.0, 1.0}), g.rules.end());
  EXPECT_NE(std::find(g.rules.begin(), g.rules.end(), ElasticRule{-256.0, 1.0}), g.rules.end());
  EXPECT_EQ(error_of([] {
              candidate_rules({4096, 1, 0, 0}, {512}, 1024);
            }),
            "no candidate rule is valid from length 512 to 1024 (alpha step 4096, 1 betas)");
  EXPECT_NE(error_of([] {
              candidate_rules({0, 9, 4096, 1024}, {512}, 1024);
            }).find("above"),
            std::string::npos);
}

TEST(RuleMilp, TimeOutWithoutAFeasiblePlanIsAClearError) {
  // Many heads and rules, a tight density band: CBC cannot find a point in a microsecond.
  InfluenceProfile profile = empty_profile({"llama", 8, 8, 8, ""}, 32, 4, "synthetic", {2048});
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (kernels::InfluenceHistogram& h : profile.lengths[0].layers) {
    for (double& v : h.by_distance) v = unit(rng);
  }
  profile.lengths[0].samples = {0};
  const RuleGrid grid = candidate_rules({128, 9, 0, 2048}, {2048}, 2048);
  const AssignmentProblem p = assignment_problem(profile, grid, {{2048, 0.437}}, 0.9999, 1);
  const std::string e = error_of([&] { solve_min_loss(p, 0, {1e-6, 0.0}); });
  EXPECT_NE(e.find("time limit"), std::string::npos) << e;
}

}  // namespace
}  // namespace moa
