// `moa generate` with sparse attention: StreamingLLM, plan files and H2O run and report a KV
// cache whose size against a dense cache at the same N is their density (H2O at density 1
// equals dense); bad densities, sinks, methods and plans for another model fail with one clear
// line.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/random_model.h"
#include "support/assets.h"

namespace moa {
namespace {

using test::expect_one_line_error;
using test::run_moa;

constexpr const char* kModel = "models/stories260K.gguf";

std::string generate(const std::string& model, const std::string& extra) {
  return "generate -m " + model + " -p 'Once upon a time' -n 30 --temp 0 -t 1 " + extra;
}

// KV bytes of a sparse run over a dense run's, after checking both were sized for the same N.
double kv_ratio(const test::CommandResult& sparse, const test::CommandResult& dense) {
  EXPECT_EQ(test::reported_kv_length(sparse.err), test::reported_kv_length(dense.err))
      << sparse.err << dense.err;
  return static_cast<double>(test::reported_kv_bytes(sparse.err)) /
         static_cast<double>(test::reported_kv_bytes(dense.err));
}

TEST(SparseGenerate, StreamingKeepsItsDensityOfTheDenseBytesAtTheSameN) {
  MOA_REQUIRE_ASSET(model, kModel);
  const auto dense = run_moa(generate(model, "-c 256"));
  ASSERT_EQ(dense.exit_code, 0) << dense.err;
  EXPECT_NE(dense.err.find("(dense at N = 256)"), std::string::npos) << dense.err;
  for (double density : {0.5, 0.25}) {
    const auto streaming = run_moa(generate(
        model, "-c 256 --method streaming --sinks 4 --density " + std::to_string(density)));
    ASSERT_EQ(streaming.exit_code, 0) << streaming.err;
    // 4 sinks + the window keep round(D x 256) keys per head.
    const std::string window = std::to_string(std::llround(density * 256) - 4);
    EXPECT_NE(streaming.err.find("streaming (window " + window + ", 4 sinks)"), std::string::npos)
        << streaming.err;
    EXPECT_NE(streaming.err.find(fmt::format("KV density {:.4f} at N = 256", density)),
              std::string::npos)
        << streaming.err;
    EXPECT_NE(streaming.err.find("% of dense "), std::string::npos) << streaming.err;
    EXPECT_NEAR(kv_ratio(streaming, dense), density, 0.02) << streaming.err;
    EXPECT_FALSE(streaming.out.empty());
  }
}

TEST(SparseGenerate, WithoutAContextEveryMethodIsSizedForPromptPlusNewTokens) {
  MOA_REQUIRE_ASSET(model, kModel);
  const std::string run = "generate -m " + model + " -p 'Once upon a time' -n 120 --temp 0 -t 1 ";
  const auto dense = run_moa(run);
  const auto streaming = run_moa(run + "--method streaming --density 0.25 --sinks 4");
  ASSERT_EQ(dense.exit_code, 0) << dense.err;
  ASSERT_EQ(streaming.exit_code, 0) << streaming.err;
  const long long n = test::reported_kv_length(dense.err);
  EXPECT_GT(n, 120);
  EXPECT_LT(n, 140);  // the prompt is a few tokens
  EXPECT_NEAR(kv_ratio(streaming, dense), 0.25, 0.02) << streaming.err;
}

TEST(SparseGenerate, PlanFileRunsReportTheirDensity) {
  MOA_REQUIRE_ASSET(model, kModel);
  const std::string plan = test::temp_dir() + "/w16.json";
  ASSERT_EQ(run_moa("plan uniform --window 16 --sinks 4 -m " + model + " -o " + plan).exit_code, 0);
  const auto dense = run_moa(generate(model, "-c 200"));
  const auto moa = run_moa(generate(model, "-c 200 --plan " + plan));
  ASSERT_EQ(moa.exit_code, 0) << moa.err;
  EXPECT_NE(moa.err.find("attention: moa"), std::string::npos) << moa.err;
  EXPECT_NE(moa.err.find("KV density 0.1000 at N = 200"), std::string::npos) << moa.err;
  EXPECT_NEAR(kv_ratio(moa, dense), 0.1, 0.02) << moa.err;
}

TEST(SparseGenerate, RejectsBadDensitySinksAndMethods) {
  MOA_REQUIRE_ASSET(model, kModel);
  expect_one_line_error(run_moa(generate(model, "--method streaming --density 1.5")), "--density");
  expect_one_line_error(run_moa(generate(model, "--method streaming --density 0")), "--density");
  expect_one_line_error(
      run_moa(generate(model, "-c 100 --method streaming --density 0.5 --sinks 500")), "--sinks");
  // The sinks count in the density: 64 sinks fill the 25 keys density 0.25 keeps at N = 100.
  expect_one_line_error(
      run_moa(generate(model, "-c 100 --method streaming --density 0.25 --sinks 64")),
      "--sinks: 64 sinks leave no room for a window");
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

TEST(SparseGenerate, RejectsAPlanWithMoreSinksThanTheContext) {
  MOA_REQUIRE_ASSET(model, kModel);
  const std::string plan = test::temp_dir() + "/sinks.json";
  ASSERT_EQ(run_moa("plan uniform --window 16 --sinks 500 -m " + model + " -o " + plan).exit_code,
            0);
  expect_one_line_error(run_moa(generate(model, "-c 100 --plan " + plan)),
                        "sinks: 500 sink tokens exceed the context of");
}

// --method h2o: runs on a real and a random model, keeps a KV cache smaller than dense, equals
// dense at density 1 (nothing is evicted), and rejects bad densities with one clear line.

std::string generate_long(const std::string& model, const std::string& extra) {
  return "generate -m '" + model + "' -p 'Once upon a time' -n 60 --temp 0 -t 1 " + extra;
}

TEST(H2oGenerate, RunsOnARealModelWithItsDensityOfTheDenseBytes) {
  MOA_REQUIRE_ASSET(model, kModel);
  const auto dense = run_moa(generate_long(model, ""));
  ASSERT_EQ(dense.exit_code, 0) << dense.err;
  // N = 5 prompt tokens + 60 new ones at density 0.25: 16 keys per head, so decoding evicts.
  const auto h2o = run_moa(generate_long(model, "--method h2o --density 0.25"));
  ASSERT_EQ(h2o.exit_code, 0) << h2o.err;
  EXPECT_NE(h2o.err.find("attention: h2o (density 0.25), KV density 0.2"), std::string::npos)
      << h2o.err;
  // Each of its budget + 1 slots per head (the arriving key needs one) also holds a 4-byte
  // position and a 4-byte score beside the 32 bytes of an F16 key and value of stories260K.
  const auto n = static_cast<double>(test::reported_kv_length(h2o.err));
  const double slots = (std::round(0.25 * n) + 1) / n * (32.0 + 8.0) / 32.0;
  EXPECT_NEAR(kv_ratio(h2o, dense), slots, 0.01) << h2o.err;
  EXPECT_GT(h2o.out.size(), 20u);
}

TEST(H2oGenerate, FullDensityGeneratesWhatDenseGenerates) {
  MOA_REQUIRE_ASSET(model, kModel);
  const auto dense = run_moa(generate_long(model, "-c 128"));
  const auto h2o = run_moa(generate_long(model, "-c 128 --method h2o --density 1"));
  ASSERT_EQ(dense.exit_code, 0) << dense.err;
  ASSERT_EQ(h2o.exit_code, 0) << h2o.err;
  EXPECT_EQ(h2o.out, dense.out);
}

TEST(H2oGenerate, RunsOnARandomModel) {
  RandomModelSpec spec;
  spec.n_ctx = 256;
  const std::string path = test::temp_dir() + "/random.gguf";
  write_random_model(spec, path);
  const auto r = run_moa(generate_long(path, "--method h2o --density 0.25"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("attention: h2o (density 0.25)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("decode: "), std::string::npos) << r.err;
}

TEST(H2oGenerate, RejectsBadDensities) {
  MOA_REQUIRE_ASSET(model, kModel);
  for (const char* bad : {"0", "1.5", "-0.5", "nan"}) {
    expect_one_line_error(
        run_moa(generate_long(model, std::string("--method h2o --density ") + bad)), "--density");
  }
}

TEST(H2oBench, ReportsH2oBesideDense) {
  MOA_REQUIRE_ASSET(model, kModel);
  const auto r = run_moa("bench -m '" + model +
                         "' -p 16 -n 8 -r 2 --ctx 0,64 -b 1,2 -t 1 --method dense,h2o "
                         "--density 0.5 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const auto& results = j["results"];
  ASSERT_EQ(results.size(), 12u);  // 2 methods x 2 depths x (pp16, tg8 x batch 1, tg8 x batch 2)
  EXPECT_EQ(results[0]["method"], "dense");
  EXPECT_EQ(results[6]["method"], "h2o (density 0.5)");
  for (size_t i = 6; i < 12; ++i) {
    EXPECT_GT(results[i]["tokens_per_second"].get<double>(), 0.0);
    // Each row has its own cache for its N and batch: compare with the same dense row.
    EXPECT_DOUBLE_EQ(results[i]["kv_density"].get<double>(), 0.5);  // B = round(0.5 N) keys
    EXPECT_LT(results[i]["kv_cache_bytes"].get<double>(),
              results[i - 6]["kv_cache_bytes"].get<double>());
    EXPECT_LE(results[i]["kv_bytes_read_per_step"].get<double>(),
              results[i - 6]["kv_bytes_read_per_step"].get<double>());
  }
  // A decode step at position p reads min(p, B) + 1 keys per KV head, never the scratch. Depth 64
  // (N = 72, B = 36): 37 keys at every step; depth 0 (N = 8, B = 4): 1, 2, 3, 4, 5, 5, 5, 5, mean
  // 3.75. The difference: 33.25 keys x 5 layers x 32 key dims x 2 bytes x 2 (K, V).
  EXPECT_DOUBLE_EQ(
      results[10]["bytes_per_step"].get<double>() - results[7]["bytes_per_step"].get<double>(),
      33.25 * 5 * 32 * 2 * 2);
}

}  // namespace
}  // namespace moa
