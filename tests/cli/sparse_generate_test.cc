// `moa generate` with sparse attention: StreamingLLM and plan files run and report a KV cache
// smaller than dense; bad densities, sinks, methods and plans for another model fail with one
// clear line.
#include <gtest/gtest.h>

#include <string>

#include "support/assets.h"

namespace moa {
namespace {

using test::expect_one_line_error;
using test::run_moa;

constexpr const char* kModel = "models/stories260K.gguf";

std::string generate(const std::string& model, const std::string& extra) {
  return "generate -m " + model + " -p 'Once upon a time' -n 30 --temp 0 " + extra;
}

TEST(SparseGenerate, StreamingAndPlanRunsReportSmallerKvCaches) {
  MOA_REQUIRE_ASSET(model, kModel);
  const auto dense = run_moa(generate(model, "-c 256"));
  ASSERT_EQ(dense.exit_code, 0) << dense.err;
  const auto streaming =
      run_moa(generate(model, "-c 256 --method streaming --density 0.5 --sinks 4"));
  ASSERT_EQ(streaming.exit_code, 0) << streaming.err;
  EXPECT_NE(streaming.err.find("streaming (window "), std::string::npos) << streaming.err;
  EXPECT_NE(streaming.err.find(", 4 sinks)"), std::string::npos) << streaming.err;
  EXPECT_GT(test::reported_kv_bytes(streaming.err), 0);
  EXPECT_LT(test::reported_kv_bytes(streaming.err), test::reported_kv_bytes(dense.err));
  EXPECT_FALSE(streaming.out.empty());

  const std::string plan = test::temp_dir() + "/w16.json";
  ASSERT_EQ(run_moa("plan uniform --window 16 --sinks 4 -m " + model + " -o " + plan).exit_code, 0);
  const auto moa = run_moa(generate(model, "--plan " + plan));
  ASSERT_EQ(moa.exit_code, 0) << moa.err;
  EXPECT_NE(moa.err.find("attention: moa"), std::string::npos) << moa.err;
}

TEST(SparseGenerate, RejectsBadDensitySinksAndMethods) {
  MOA_REQUIRE_ASSET(model, kModel);
  expect_one_line_error(run_moa(generate(model, "--method streaming --density 1.5")), "--density");
  expect_one_line_error(run_moa(generate(model, "--method streaming --density 0")), "--density");
  expect_one_line_error(
      run_moa(generate(model, "-c 100 --method streaming --density 0.5 --sinks 500")), "--sinks");
  expect_one_line_error(run_moa(generate(model, "--method h3o")), "--method");
  expect_one_line_error(run_moa(generate(model, "--method moa")), "--plan");
}

TEST(SparseGenerate, RejectsAPlanMadeForAnotherModel) {
  MOA_REQUIRE_ASSET(model, kModel);
  MOA_REQUIRE_ASSET(other, "models/llama-2-tiny-random.gguf");
  const std::string plan = test::temp_dir() + "/other.json";
  ASSERT_EQ(run_moa("plan uniform --window 16 --sinks 4 -m " + other + " -o " + plan).exit_code, 0);
  expect_one_line_error(run_moa(generate(model, "--plan " + plan)), "plan has");
}

}  // namespace
}  // namespace moa
