// `moa compress` end to end on stories260K with a small setting (profiled at 384 and 512
// tokens, validated at 1024, two samples per length): a plan within the budget at every
// budgeted length, picked by validation loss, with the summary printed; a run killed with
// SIGKILL during calibration and again during validation reruns to the same plan; bad input
// gives one error line.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "plan/plan_io.h"
#include "support/assets.h"

namespace moa {
namespace {

using test::run_moa;

std::string small_compress(const std::string& model, const std::string& output) {
  return "compress -m '" + model +
         "' --density 0.5 --max-length 1024 --lengths 384,512 --tasks passkey,kv --max-answer 16 "
         "-n 2 --points 2 --alpha-step 64 -t 1 -o '" +
         output + "'";
}

// Starts `moa ARGS` and kills it with SIGKILL as soon as `watched` exists.
void run_killed_when(const std::string& args, const std::string& watched) {
  const std::string script = fmt::format(
      "sh -c \"'{}' {} >/dev/null 2>&1 & p=\\$!; for i in \\$(seq 5000); do [ -f '{}' ] && "
      "break; sleep 0.002; done; kill -9 \\$p; wait \\$p; exit 0\"",
      test::moa_binary(), args, watched);
  ASSERT_EQ(std::system(script.c_str()), 0);
}

TEST(CompressCommand, WritesAPlanMeetingTheBudgetOnStories260K) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string dir = test::temp_dir();
  const std::string plan_path = dir + "/plan.json";
  const test::CommandResult r = run_moa(small_compress(model, plan_path));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* stage : {"[1/5] calibrate", "[3/5] profile", "[4/5] optimize", "[5/5] validate"})
    EXPECT_NE(r.err.find(stage), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("**chosen**"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| 1024 | 0.5 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| profile | "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("KV cache at 1024 tokens"), std::string::npos) << r.out;

  const SparsePlan plan = read_plan(plan_path);
  EXPECT_EQ(plan.method, "moa");
  EXPECT_EQ(plan.profiled_lengths, (std::vector<int64_t>{384, 512}));
  EXPECT_EQ(plan.validation_length, 1024);
  EXPECT_EQ(plan.sinks, 48);  // a quarter of the 50% budget at the shortest length, 384
  ASSERT_EQ(plan.density_budgets.size(), 3u);
  for (const DensityBudget& b : plan.density_budgets) {
    EXPECT_EQ(b.density, 0.5);
    EXPECT_LE(kv_density(plan, b.length), 0.5 + 1e-12) << b.length;  // a mean of doubles
  }
  ASSERT_FALSE(plan.pareto.empty());
  for (const ParetoPoint& p : plan.pareto) EXPECT_GT(p.validation_loss, 0.0);
  for (const char* file : {"compress.json", "calibration.json", "validation-set.json",
                           "model.profile", "front.json", "validation-losses.json"}) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/plan.work/" + file)) << file;
  }

  // A second run finds every stage done and writes the same plan.
  const std::string again = dir + "/again.json";
  const test::CommandResult rerun =
      run_moa(small_compress(model, again) + " --work-dir '" + dir + "/plan.work'");
  ASSERT_EQ(rerun.exit_code, 0) << rerun.err;
  EXPECT_NE(rerun.out.find("(resumed)"), std::string::npos) << rerun.out;
  EXPECT_EQ(test::read_file(again), test::read_file(plan_path));

  // The same folder with another budget is refused, naming the setting.
  std::string other = small_compress(model, again) + " --work-dir '" + dir + "/plan.work'";
  other.replace(other.find("--density 0.5"), 13, "--density 0.4");
  test::expect_one_line_error(run_moa(other), "other settings (budgets:");
}

TEST(CompressCommand, ResumesAfterKillsToTheSamePlan) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string dir = test::temp_dir();
  const test::CommandResult whole = run_moa(small_compress(model, dir + "/whole.json"));
  ASSERT_EQ(whole.exit_code, 0) << whole.err;

  const std::string killed = dir + "/killed.json", work = dir + "/killed.work";
  run_killed_when(small_compress(model, killed), work + "/calibration.json");
  ASSERT_TRUE(std::filesystem::exists(work + "/calibration.json"));
  EXPECT_FALSE(std::filesystem::exists(killed));
  run_killed_when(small_compress(model, killed), work + "/front.json");
  ASSERT_TRUE(std::filesystem::exists(work + "/front.json"));
  const test::CommandResult resumed = run_moa(small_compress(model, killed));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(test::read_file(killed), test::read_file(dir + "/whole.json"));
}

TEST(CompressCommand, BadInputGivesOneErrorLine) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string dir = test::temp_dir();
  const std::string m = " -m '" + model + "'";
  test::expect_one_line_error(run_moa("compress" + m + " --density 1.5 -o " + dir + "/p.json"),
                              "--density: 1.5 is not in (0, 1]");
  test::expect_one_line_error(run_moa("compress" + m + " -o " + dir + "/p.json"), "--density");
  test::expect_one_line_error(run_moa("compress" + m + " --density 0.5"), "-o");
  test::expect_one_line_error(
      run_moa("compress -m " + dir + "/missing.gguf --density 0.5 -o " + dir + "/p.json"),
      "missing.gguf");
  test::expect_one_line_error(
      run_moa("compress" + m + " --density 0.5 --max-length 512 --lengths 256,512 -o " + dir +
              "/p.json"),
      "not below the validation length 512");
  test::expect_one_line_error(
      run_moa("compress" + m + " --density 0.5 --max-length 4096 -o " + dir + "/p.json"),
      "exceeds the model's context of 2048");
  test::expect_one_line_error(
      run_moa("compress" + m + " --density 0.5,0.4 --max-length 512 -o " + dir + "/p.json"),
      "budgeted lengths (128,256,512)");
  // Density so low that not even the narrowest rules fit: refused before any calibration.
  test::expect_one_line_error(
      run_moa("compress" + m + " --density 0.01 --max-length 512 -o " + dir + "/low.json"),
      "density budget 0.01 at length 128 is infeasible");
  EXPECT_FALSE(std::filesystem::exists(dir + "/low.work"));
}

}  // namespace
}  // namespace moa
