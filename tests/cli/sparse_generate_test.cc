// `moa generate` with sparse attention: StreamingLLM, plan files and H2O run and report a KV
// cache smaller than dense (H2O at density 1 equals dense); bad densities, sinks, methods and
// plans for another model fail with one clear line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "model/random_model.h"
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

TEST(H2oGenerate, RunsOnARealModelWithASmallerCache) {
  MOA_REQUIRE_ASSET(model, kModel);
  const auto dense = run_moa(generate_long(model, "-c 256"));
  ASSERT_EQ(dense.exit_code, 0) << dense.err;
  // 5 prompt tokens + 60 new ones at density 0.5: 33 keys per head, so decoding evicts.
  const auto h2o = run_moa(generate_long(model, "-c 256 --method h2o --density 0.5"));
  ASSERT_EQ(h2o.exit_code, 0) << h2o.err;
  EXPECT_NE(h2o.err.find("attention: h2o (density 0.5)"), std::string::npos) << h2o.err;
  EXPECT_GT(test::reported_kv_bytes(h2o.err), 0);
  EXPECT_LT(test::reported_kv_bytes(h2o.err), test::reported_kv_bytes(dense.err));
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
    EXPECT_LT(results[i]["kv_cache_bytes"].get<double>(),
              results[i - 6]["kv_cache_bytes"].get<double>());
    EXPECT_LE(results[i]["kv_bytes_read_per_step"].get<double>(),
              results[i - 6]["kv_bytes_read_per_step"].get<double>());
  }
}

}  // namespace
}  // namespace moa
