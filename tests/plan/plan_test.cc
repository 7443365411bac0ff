// Plans: span arithmetic (against brute-force counting), densities, JSON round trip, reference
// import with GQA folding, and the errors for plans that do not fit or make no sense.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "plan/plan_io.h"
#include "support/assets.h"
#include "util/error.h"

namespace moa {
namespace {

ModelIdentity tiny_model() { return {"llama", 2, 4, 2, "abc"}; }

// Brute force over the causal matrix with METHOD.md's mask: j < G or i - j < S.
int64_t count_visible(int64_t n, int64_t span, int64_t sinks) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) count += (j < sinks || i - j < span) ? 1 : 0;
  return count;
}

TEST(ElasticRule, SpanIsClampedAlphaPlusBetaN) {
  EXPECT_EQ((ElasticRule{100, 0.25}.span(1000)), 350);
  EXPECT_EQ((ElasticRule{100, 0.25}.span(10)), 10);  // clamped to N
  EXPECT_EQ((ElasticRule{0, 1}.span(777)), 777);
  EXPECT_EQ((ElasticRule{0.4, 0}.span(50)), kMinSpan);
  EXPECT_EQ((ElasticRule{-512, 0.5}.span(4096)), 1536);
  EXPECT_THROW((ElasticRule{-512, 0.5}.span(512)), Error);  // negative span
  EXPECT_THROW((ElasticRule{std::nan(""), 0.5}.span(512)), Error);
}

TEST(Plan, VisiblePairsMatchesBruteForce) {
  for (int64_t n : {1, 2, 7, 64, 100, 257})
    for (int64_t span : {1, 3, 64, 200, 1000})
      for (int64_t sinks : {0, 1, 4, 64, 300}) {
        EXPECT_EQ(visible_pairs(n, std::min(span, n), sinks),
                  count_visible(n, std::min(span, n), sinks))
            << "n " << n << " span " << span << " sinks " << sinks;
      }
}

// The per-query loop visible_pairs used to run (hours at N = 10^12): the reference for the
// closed form.
int64_t visible_pairs_by_query(int64_t n, int64_t span, int64_t sinks) {
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t band = std::min(span, i + 1);
    const int64_t sink = std::min(sinks, i + 1);
    total += band + sink - std::max<int64_t>(0, sink - (i + 1 - band));
  }
  return total;
}

TEST(Plan, VisiblePairsClosedFormMatchesTheLoopOnEdgeCases) {
  for (int64_t n = 0; n <= 40; ++n)
    for (int64_t span = 0; span <= 45; ++span)
      for (int64_t sinks : {0, 1, 2, 3, 7, 19, 39, 40, 41, 100}) {
        ASSERT_EQ(visible_pairs(n, span, sinks), visible_pairs_by_query(n, span, sinks))
            << "n " << n << " span " << span << " sinks " << sinks;
      }
  for (int64_t n : {1000, 4096, 10007})
    for (int64_t span : {1, 999, 1000, 4096, 20000})
      for (int64_t sinks : {0, 64, 1000, 5000, 20000}) {
        ASSERT_EQ(visible_pairs(n, span, sinks), visible_pairs_by_query(n, span, sinks))
            << "n " << n << " span " << span << " sinks " << sinks;
      }
  EXPECT_THROW(visible_pairs(-1, 4, 4), Error);
  EXPECT_THROW(visible_pairs(int64_t{1} << 40, int64_t{1} << 40, 0), Error);  // > 2^63 pairs
}

TEST(Plan, DensitiesAtHugeLengthsAreImmediateAndExact) {
  SparsePlan window = uniform_plan(tiny_model(), 1000, 64);
  const int64_t n = 1'000'000'000'000;
  EXPECT_DOUBLE_EQ(kv_density(window, n), 1064e-12);  // the 64 sinks count
  // (S(S+1)/2 + (N-S)(S+G) - G(G+1)/2) / (N(N+1)/2), leading terms 2(S+G)/N.
  EXPECT_NEAR(causal_area_density(window, n), 2.0 * 1064 / 1e12, 1e-15);
  EXPECT_DOUBLE_EQ(causal_area_density(dense_plan(tiny_model()), n), 1.0);
}

TEST(Plan, DensitiesOfUniformAndDensePlans) {
  SparsePlan dense = dense_plan(tiny_model());
  EXPECT_DOUBLE_EQ(kv_density(dense, 4096), 1.0);
  EXPECT_DOUBLE_EQ(causal_area_density(dense, 4096), 1.0);
  SparsePlan window = uniform_plan(tiny_model(), 1024, 0);
  EXPECT_DOUBLE_EQ(kv_density(window, 4096), 0.25);
  EXPECT_NEAR(causal_area_density(window, 4096),
              double(count_visible(4096, 1024, 0)) / (4096.0 * 4097 / 2), 1e-12);
  // The sinks count: 64 sinks + a 1024 window keep 1088 keys; a dense head keeps all 4096.
  SparsePlan mixed = uniform_plan(tiny_model(), 1024, 64);
  mixed.rules[1][1] = {0, 1};
  EXPECT_DOUBLE_EQ(kv_density(mixed, 4096), (3 * 1088.0 / 4096 + 1.0) / 4);
  EXPECT_DOUBLE_EQ(kv_density(uniform_plan(tiny_model(), 100, 64), 128), 1.0);  // capped at N
}

TEST(Plan, KeptKeysAreSinksPlusBandCappedAtTheLength) {
  EXPECT_EQ(kept_keys(4096, 1024, 64), 1088);
  EXPECT_EQ(kept_keys(1000, 990, 64), 1000);
  EXPECT_EQ(kept_keys(50, 1, 0), 1);
}

TEST(PlanIo, RoundTripsThroughJson) {
  SparsePlan plan = uniform_plan(tiny_model(), 512, 32);
  plan.rules[1][0] = {-100.5, 0.375};
  plan.profiled_lengths = {1024, 2048};
  plan.density_budgets = {{2048, 0.5}};
  std::string path = test::temp_dir() + "/p.json";
  write_plan(plan, path);
  SparsePlan back = read_plan(path);
  EXPECT_EQ(back.rules, plan.rules);
  EXPECT_EQ(back.sinks, 32);
  EXPECT_EQ(back.method, "uniform");
  EXPECT_EQ(back.model.hash, "abc");
  EXPECT_EQ(back.profiled_lengths, plan.profiled_lengths);
  EXPECT_DOUBLE_EQ(back.density_budgets.at(0).density, 0.5);
}

TEST(PlanIo, ReadsOlderPlansThatCarryABlockSize) {
  // Plans written before block_size was dropped (nothing used it) still read.
  std::string text = plan_to_json(uniform_plan(tiny_model(), 512, 32));
  EXPECT_EQ(text.find("block_size"), std::string::npos);
  text.insert(text.find("\"sinks\""), "\"block_size\": 64, ");
  EXPECT_EQ(plan_from_json(text, "old.json").rules, uniform_plan(tiny_model(), 512, 32).rules);
}

TEST(PlanIo, RoundTripsTheOptimizersParetoFront) {
  SparsePlan plan = uniform_plan(tiny_model(), 512, 32);
  plan.profiled_lengths = {1024, 2048};
  plan.density_budgets = {{2048, 0.5}};
  plan.validation_length = 4096;
  plan.pareto = {{{0.5}, {0.25, 0.75}, 1.5, true}, {{0.45}, {0.5, 0.5}, -1.0, false}};
  const SparsePlan back = plan_from_json(plan_to_json(plan), "p.json");
  EXPECT_EQ(back.validation_length, 4096);
  ASSERT_EQ(back.pareto.size(), 2u);
  EXPECT_EQ(back.pareto[0].losses, (std::vector<double>{0.25, 0.75}));
  EXPECT_DOUBLE_EQ(back.pareto[0].validation_loss, 1.5);
  EXPECT_TRUE(back.pareto[0].chosen);
  EXPECT_LT(back.pareto[1].validation_loss, 0.0);  // written as null: not measured
  EXPECT_NE(plan_to_json(plan).find("\"validation_loss\": null"), std::string::npos);
  plan.pareto[1].losses = {0.5};
  try {
    plan_from_json(plan_to_json(plan), "p.json");
    ADD_FAILURE() << "a front point with too few losses was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pareto[1]: 1 densities and 1 losses"), std::string::npos)
        << e.what();
  }
}

std::string plan_error(const std::string& text) {
  try {
    plan_from_json(text, "p.json");
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for " << text;
  return {};
}

TEST(PlanIo, RejectsMalformedPlans) {
  std::string good = plan_to_json(uniform_plan(tiny_model(), 512, 32));
  EXPECT_NE(plan_error("{nope").find("p.json: not valid JSON"), std::string::npos);
  auto edit = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    size_t pos = s.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    return s.replace(pos, from.size(), to);
  };
  // {text in a good plan, its replacement, a fragment the error must contain}
  const char* const cases[][3] = {
      {"\"version\": 1", "\"version\": 9", "version: 9 is not supported"},
      {"\"sinks\": 32", "\"sinks\": \"many\"", "sinks: expected an integer, got string"},
      {"\"sinks\": 32", "\"sinks\": 4.5", "sinks: expected an integer, got number"},
      // Integers are range-checked before the cast: 2^32 + 1 is not version 1.
      {"\"version\": 1", "\"version\": 4294967297", "version: 4294967297 is not supported"},
      {"\"sinks\": 32", "\"sinks\": 9223372036854775808",
       "sinks: 9223372036854775808 is out of range"},
      {"\"sinks\": 32", "\"sinks\": 1e999",
       "p.json: not a valid plan: number overflow parsing '1e999'"},
      {"\"beta\": 0.0", "\"beta\": 1.5", "rules[0][0]: beta 1.5 is outside [0, 1]"},
      {"\"n_layer\": 2", "\"n_layer\": 3", "rules: 2 layers, but model.n_layer is 3"},
      {"\"alpha\": 512.0", "\"alpha\": null", "rules[0][0].alpha: expected a number, got null"},
  };
  for (const auto& [from, to, fragment] : cases) {
    EXPECT_NE(plan_error(edit(from, to)).find(fragment), std::string::npos) << to;
  }
  EXPECT_NE(plan_error("{\"alphas\": [[1]], \"betas\": [[0]]}").find("moa plan import"),
            std::string::npos);
}

TEST(Plan, RejectsAPlanForAnotherModel) {
  SparsePlan plan = uniform_plan(tiny_model(), 512, 32);
  ModelIdentity other = tiny_model();
  other.n_layer = 3;
  EXPECT_THROW(check_plan_matches(plan, other, "p"), Error);
  other = tiny_model();
  other.hash = "def";
  try {
    check_plan_matches(plan, other, "p");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "p: plan was made for model hash abc, this model's hash is def");
  }
  EXPECT_NO_THROW(check_plan_matches(plan, tiny_model(), "p"));
}

TEST(PlanImport, FoldsQueryHeadsUnderGqa) {
  std::string path = test::temp_dir() + "/ref.json";
  std::ofstream(path)
      << R"({"alphas": [[100, 100, 50, 80], [10, 10, 20, 20]], "betas": [[0.5, 0.5, 0.25, 0.125], [0, 0, 1, 1]]})";
  EXPECT_THROW(import_reference_plan(path, tiny_model(), GqaFold::kReject, 64), Error);
  SparsePlan plan = import_reference_plan(path, tiny_model(), GqaFold::kWidest, 64);
  EXPECT_EQ(plan.rules[0][0], (ElasticRule{100, 0.5}));
  EXPECT_EQ(plan.rules[0][1], (ElasticRule{80, 0.25}));
  EXPECT_EQ(plan.rules[1][1], (ElasticRule{20, 1}));
  EXPECT_EQ(plan.sinks, 64);
  std::ofstream(path) << R"({"alphas": [[1, 2, 3]], "betas": [[0, 0, 0]]})";
  EXPECT_THROW(import_reference_plan(path, tiny_model(), GqaFold::kWidest, 64), Error);
}

}  // namespace
}  // namespace moa
