// Plans: span arithmetic (against brute-force counting), densities, JSON round trip, reference
// import with GQA folding, and the errors for plans that do not fit or make no sense.
#include <gtest/gtest.h>

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

TEST(Plan, BandMasksCarrySinksAndSpans) {
  SparsePlan plan = uniform_plan(tiny_model(), 256, 16);
  plan.rules[0][1] = {128, 0.5};
  auto masks = plan.band_masks(0, 1000);
  ASSERT_EQ(masks.size(), 2u);
  EXPECT_EQ(masks[0].sinks, 16);
  EXPECT_EQ(masks[0].span, 256);
  EXPECT_EQ(masks[1].span, 628);
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
  EXPECT_NE(
      plan_error(edit("\"version\": 1", "\"version\": 9")).find("version: 9 is not supported"),
      std::string::npos);
  EXPECT_NE(plan_error(edit("\"sinks\": 32", "\"sinks\": \"many\""))
                .find("sinks: expected a number, got string"),
            std::string::npos);
  EXPECT_NE(plan_error(edit("\"beta\": 0.0", "\"beta\": 1.5"))
                .find("rules[0][0]: beta 1.5 is outside [0, 1]"),
            std::string::npos);
  EXPECT_NE(plan_error(edit("\"n_layer\": 2", "\"n_layer\": 3"))
                .find("rules: 2 layers, but model.n_layer is 3"),
            std::string::npos);
  EXPECT_NE(plan_error(edit("\"alpha\": 512.0", "\"alpha\": null"))
                .find("rules[0][0].alpha: expected a number, got null"),
            std::string::npos);
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
