// `moa optimize` end to end on stories260K's shape (5 layers, 4 KV heads, context 2048) with a
// synthetic influence profile: a plan within the budget with its Pareto front recorded, the
// validation pick on a calibration length above the profiled ones, the full-or-window shape,
// `--list-rules`, `plan show`'s span grid, and one error line for bad inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "engine/model_config.h"
#include "gguf/gguf_file.h"
#include "plan/plan_io.h"
#include "profile/influence_profile.h"
#include "support/assets.h"

namespace moa {
namespace {

using test::run_moa;

// Influence decaying with distance at a rate per head, so heads want different spans.
std::string write_synthetic_profile(const std::string& model, const std::string& dir,
                                    int64_t layers_override = 0) {
  const gguf::GgufFile file = gguf::GgufFile::open(model);
  const ModelConfig config = read_model_config(file);
  ModelIdentity id = identity_of(config, file.metadata_hash());
  if (layers_override > 0) id.n_layer = layers_override;
  InfluenceProfile p = empty_profile(id, config.n_vocab, 16, "synthetic", {256, 512});
  for (ProfiledLength& l : p.lengths) {
    l.samples = {0, 1};
    for (size_t layer = 0; layer < l.layers.size(); ++layer) {
      for (int64_t kv = 0; kv < id.n_head_kv; ++kv) {
        const double rate = 0.001 * std::pow(3.0, static_cast<double>((layer + kv) % 5));
        for (int64_t d = 0; d < l.length; ++d)
          l.layers[layer].at(kv, d) = (1.0 + kv) * std::exp(-rate * static_cast<double>(d));
      }
    }
  }
  const std::string path = dir + (layers_override > 0 ? "/other.profile" : "/synthetic.profile");
  write_profile(p, path);
  return path;
}

TEST(OptimizeCommand, WritesAPlanWithinTheBudgetAndItsFront) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string dir = test::temp_dir();
  const std::string profile = write_synthetic_profile(model, dir);
  const std::string plan_path = dir + "/plan.json";
  test::CommandResult r = run_moa("optimize --profile " + profile + " -m '" + model +
                                  "' --density 0.4 --points 4 -o " + plan_path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| plan | loss@256 | loss@512 | density@256 (≤ 0.4) |"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("**chosen**"), std::string::npos) << r.out;
  const SparsePlan plan = read_plan(plan_path);
  EXPECT_EQ(plan.method, "moa");
  EXPECT_EQ(plan.sinks, 16);
  EXPECT_EQ(plan.profiled_lengths, (std::vector<int64_t>{256, 512}));
  ASSERT_EQ(plan.density_budgets.size(), 2u);
  EXPECT_LE(kv_density(plan, 256), 0.4);
  EXPECT_LE(kv_density(plan, 512), 0.4);
  EXPECT_EQ(plan.validation_length, 0);
  ASSERT_FALSE(plan.pareto.empty());
  int chosen = 0;
  for (const ParetoPoint& p : plan.pareto) {
    chosen += p.chosen ? 1 : 0;
    EXPECT_LT(p.validation_loss, 0.0);
    EXPECT_LE(p.densities[1], 0.4);
  }
  EXPECT_EQ(chosen, 1);

  r = run_moa("plan show " + plan_path + " -m '" + model + "' --lengths 512");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("spans at length 512 (layer x KV head"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("causal-area density"), std::string::npos) << r.out;
}

TEST(OptimizeCommand, PicksByValidationLossAtAnUnprofiledLength) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string dir = test::temp_dir();
  const std::string profile = write_synthetic_profile(model, dir);
  const std::string calib = dir + "/calib.json";
  ASSERT_EQ(
      run_moa("calibrate -m '" + model + "' --lengths 700 -n 2 --max-answer 8 -t 1 -o " + calib)
          .exit_code,
      0);
  const std::string plan_path = dir + "/plan.json";
  test::CommandResult r =
      run_moa("optimize --profile " + profile + " -m '" + model +
              "' --density 0.4 --points 3 --calib " + calib + " -t 1 -o " + plan_path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("validation loss@700"), std::string::npos) << r.out;
  const SparsePlan plan = read_plan(plan_path);
  EXPECT_EQ(plan.validation_length, 700);
  double best = 1e300, chosen = -1;
  for (const ParetoPoint& p : plan.pareto) {
    ASSERT_GE(p.validation_loss, 0.0);
    best = std::min(best, p.validation_loss);
    if (p.chosen) chosen = p.validation_loss;
  }
  EXPECT_EQ(chosen, best);
}

TEST(OptimizeCommand, BinaryShapeAndListRules) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string dir = test::temp_dir();
  const std::string profile = write_synthetic_profile(model, dir);
  test::CommandResult r =
      run_moa("optimize --profile " + profile + " -m '" + model + "' --list-rules");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("candidate rules per KV head (alpha step 32, lengths 256..2048, sinks 16)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("| rule | alpha | beta | span@256 | span@512 | span@2048 |"),
            std::string::npos);

  const std::string plan_path = dir + "/binary.json";
  r = run_moa("optimize --profile " + profile + " -m '" + model +
              "' --shape binary --window 64 --density 0.5 -o " + plan_path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const SparsePlan plan = read_plan(plan_path);
  int full = 0;
  for (const auto& layer : plan.rules) {
    for (const ElasticRule& rule : layer) {
      EXPECT_TRUE(rule == (ElasticRule{0.0, 1.0}) || rule == (ElasticRule{64.0, 0.0}));
      full += rule.beta == 1.0 ? 1 : 0;
    }
  }
  EXPECT_GT(full, 0);
  EXPECT_LE(kv_density(plan, 512), 0.5);
}

TEST(OptimizeCommand, BadInputsGiveOneErrorLine) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string dir = test::temp_dir();
  const std::string profile = write_synthetic_profile(model, dir);
  const std::string base = "optimize --profile " + profile + " -m '" + model + "' ";
  test::expect_one_line_error(run_moa(base + "--density 0.01 -o " + dir + "/p.json"),
                              "density budget 0.01 at length 256 is infeasible");
  test::expect_one_line_error(run_moa(base + "--density 0.5,0.4,0.3 -o " + dir + "/p.json"),
                              "--density: 3 budgets for 2 lengths");
  test::expect_one_line_error(run_moa(base + "-o " + dir + "/p.json"), "--density");
  test::expect_one_line_error(
      run_moa(base + "--density 0.5 --validate-length 700 -o " + dir + "/p.json"), "--calib");
  test::expect_one_line_error(
      run_moa(base + "--density 0.5 --alpha-step 4096 --betas 1 -o " + dir + "/p.json"),
      "no candidate rule is valid");
  for (const auto& [flags, named] : std::vector<std::pair<std::string, std::string>>{
           {"--points 0", "--points: 0 is not a positive count"},
           {"--time-limit 0", "--time-limit: 0 s is not a positive, finite time"},
           {"--time-limit inf", "--time-limit: inf s is not a positive, finite time"},
           {"-t 513", "-t: 513 is not a thread count"},
           {"--gap 1.5", "--gap: 1.5 is not a fraction in [0, 1)"}}) {
    test::expect_one_line_error(run_moa(base + "--density 0.5 " + flags + " -o " + dir + "/p.json"),
                                named);
  }
  // -o naming the profile it reads: refused, and the profile is left as it was.
  const std::string before = test::read_file(profile);
  test::expect_one_line_error(run_moa(base + "--density 0.5 -o " + profile),
                              profile + ": is an input of this command");
  EXPECT_EQ(test::read_file(profile), before);
  const std::string other = write_synthetic_profile(model, dir, 6);
  test::expect_one_line_error(run_moa("optimize --profile " + other + " -m '" + model +
                                      "' --density 0.5 -o " + dir + "/p.json"),
                              "profile has 6 layers, the model has 5");
}

}  // namespace
}  // namespace moa
