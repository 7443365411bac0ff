// `moa plan` end to end: making uniform/dense plans for a real model, showing spans and
// densities, importing the reference format, and the errors for plans that do not fit.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "engine/random_model.h"
#include "plan/plan_io.h"
#include "support/assets.h"

namespace moa {
namespace {

using test::expect_one_line_error;
using test::run_moa;

TEST(PlanCommand, UniformPlanShowsItsDensities) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string plan = test::temp_dir() + "/uniform.json";
  test::CommandResult r =
      run_moa("plan uniform -m '" + model + "' --window 256 --sinks 16 -o " + plan);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  SparsePlan p = read_plan(plan);
  EXPECT_EQ(p.method, "uniform");
  EXPECT_EQ(p.sinks, 16);
  ASSERT_EQ(p.rules.size(), 5u);
  ASSERT_EQ(p.rules[0].size(), 4u);

  r = run_moa("plan show " + plan + " -m '" + model + "' --lengths 512,1024 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  // KV density counts the 16 sinks beside the 256-token window.
  EXPECT_DOUBLE_EQ(j["kv_density"][0].get<double>(), 272.0 / 512);
  EXPECT_DOUBLE_EQ(j["kv_density"][1].get<double>(), 272.0 / 1024);
  EXPECT_GT(j["causal_density"][1].get<double>(), 0.25);  // sinks and the short early rows count
  EXPECT_EQ(j["heads"].size(), 20u);
  EXPECT_EQ(j["heads"][3]["spans"][1], 256);

  r = run_moa("plan show " + plan + " --lengths 1024");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("KV density (sinks included)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0.2656"), std::string::npos) << r.out;
}

TEST(PlanCommand, DenseAndImportedPlans) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string dir = test::temp_dir();
  ASSERT_EQ(run_moa("plan dense -m '" + model + "' -o " + dir + "/dense.json").exit_code, 0);
  EXPECT_DOUBLE_EQ(kv_density(read_plan(dir + "/dense.json"), 3000), 1.0);

  // 5 layers x 8 query heads; pairs of query heads share a KV head (GQA group 2).
  nlohmann::json ref;
  for (int l = 0; l < 5; ++l) {
    ref["alphas"].push_back({64, 64, 128, 128, 32, 32, 16, 16});
    ref["betas"].push_back({0.5, 0.5, 0.25, 0.25, 0, 0, 1, 1});
  }
  std::ofstream(dir + "/ref.json") << ref.dump();
  test::CommandResult r = run_moa("plan import " + dir + "/ref.json -m '" + model +
                                  "' --sinks 4 -o " + dir + "/imported.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  SparsePlan p = read_plan(dir + "/imported.json");
  EXPECT_EQ(p.rules[2][1], (ElasticRule{128, 0.25}));
  EXPECT_EQ(p.sinks, 4);

  ref["alphas"][0][1] = 65;  // the two query heads of KV head 0 now disagree
  std::ofstream(dir + "/ref.json") << ref.dump();
  expect_one_line_error(
      run_moa("plan import " + dir + "/ref.json -m '" + model + "' -o " + dir + "/x.json"),
      "layer 0 KV head 0: its query heads have different rules");
  EXPECT_EQ(run_moa("plan import " + dir + "/ref.json -m '" + model + "' --gqa widest -o " + dir +
                    "/x.json")
                .exit_code,
            0);
}

TEST(PlanCommand, RejectsAPlanForAnotherModel) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string dir = test::temp_dir();
  write_random_model(RandomModelSpec{}, dir + "/random.gguf");
  ASSERT_EQ(run_moa("plan uniform -m " + dir + "/random.gguf --window 64 -o " + dir + "/p.json")
                .exit_code,
            0);
  expect_one_line_error(run_moa("plan show " + dir + "/p.json -m '" + model + "'"),
                        "plan has 2 layers, the model has 5");
}

TEST(PlanCommand, BadInputs) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string dir = test::temp_dir();
  expect_one_line_error(run_moa("plan uniform -m '" + model + "' --window 0 -o " + dir + "/p.json"),
                        "--window: 0");
  EXPECT_FALSE(std::ifstream(dir + "/p.json").good());  // nothing written on error
  expect_one_line_error(run_moa("plan show /nonexistent.json"),
                        "/nonexistent.json: cannot open file");
  std::ofstream(dir + "/broken.json") << "{\"format\": \"moa-plan\"";
  expect_one_line_error(run_moa("plan show " + dir + "/broken.json"), "not valid JSON");
  ASSERT_EQ(run_moa("plan uniform -m '" + model + "' --window 8 -o " + dir + "/ok.json").exit_code,
            0);
  expect_one_line_error(run_moa("plan show " + dir + "/ok.json --lengths 0"), "--lengths: 0");
}

}  // namespace
}  // namespace moa
