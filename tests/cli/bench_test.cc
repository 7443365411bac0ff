// `moa bench` end to end: the table and JSON carry every (depth, batch) case with sane numbers,
// and bad options give one-line errors. (Speed itself is never asserted.)
#include <gtest/gtest.h>
#include <signal.h>

#include <cerrno>
#include <nlohmann/json.hpp>
#include <string>

#include "eval/throughput.h"
#include "support/assets.h"

namespace moa {
namespace {

using test::expect_one_line_error;
using test::run_moa;

TEST(BenchCommand, ReportsEveryDepthAndBatchAsJson) {
  MOA_REQUIRE_ASSET(path, "models/stories260K-Q8_0.gguf");
  test::CommandResult r =
      run_moa("bench -m '" + path + "' -p 16 -n 4 -r 2 --ctx 0,32 -b 1,2 -t 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["weight_type"], "Q8_0");
  EXPECT_GT(j["memory_bandwidth_gbs"].get<double>(), 0.0);
  EXPECT_GT(j["sgemm_peak_gflops"].get<double>(), 0.0);
  EXPECT_FALSE(j["sgemm_kernels"].get<std::string>().empty());  // OpenBLAS's kernel set
  EXPECT_GT(j["int8_peak_gops"].get<double>(), 0.0);
  EXPECT_FALSE(j["int8_peak_isa"].get<std::string>().empty());
  const auto& results = j["results"];
  ASSERT_EQ(results.size(), 6u);  // per depth: pp16, tg4 x batch 1, tg4 x batch 2
  EXPECT_EQ(results[0]["test"], "pp16");
  EXPECT_EQ(results[2]["test"], "tg4");
  EXPECT_EQ(results[2]["batch"], 2);
  EXPECT_EQ(results[2]["tokens"], 8);
  EXPECT_EQ(results[3]["depth"], 32);
  for (const auto& row : results) {
    EXPECT_EQ(row["seconds"].size(), 2u);
    EXPECT_GT(row["tokens_per_second"].get<double>(), 0.0);
    EXPECT_GT(row["kv_cache_bytes"].get<double>(), 0.0);
    // Every row carries its own probed bound (bandwidth for decode, sgemm peak for prefill)
    // and the median fraction of it. Median of ratios and ratio of medians differ by timing
    // noise (a loaded machine), so only the order of magnitude is checked here.
    const bool decode = row["test"] == "tg4";
    const double bound = row[decode ? "bandwidth_gbs" : "sgemm_gflops"].get<double>();
    const double achieved = row[decode ? "gigabytes_per_second" : "gflops"].get<double>();
    const double fraction = row["fraction_of_bound"].get<double>();
    EXPECT_GT(bound, 0.0);
    EXPECT_GT(fraction, 0.0);
    EXPECT_GT(achieved, 0.0);
    EXPECT_LT(fraction, 5.0);
    // Prefill rows also carry the int8 dot-product peak probed around them and their share.
    if (!decode) {
      EXPECT_GT(row["int8_peak_gops"].get<double>(), 0.0);
      EXPECT_GT(row["fraction_of_int8_peak"].get<double>(), 0.0);
    }
  }
  // Deeper caches mean more bytes read per decode step.
  EXPECT_GT(results[4]["bytes_per_step"].get<double>(), results[1]["bytes_per_step"].get<double>());
  EXPECT_GT(results[4]["kv_bytes_read_per_step"].get<double>(),
            results[1]["kv_bytes_read_per_step"].get<double>());
  // Each row's cache holds its own N = depth + test tokens (batch 2: twice batch 1's).
  EXPECT_EQ(results[0]["n_ctx"], 16);
  EXPECT_EQ(results[1]["n_ctx"], 4);
  EXPECT_EQ(results[4]["n_ctx"], 36);
  EXPECT_EQ(results[5]["kv_cache_bytes"].get<double>(),
            2 * results[4]["kv_cache_bytes"].get<double>());
  EXPECT_LT(results[1]["kv_cache_bytes"].get<double>(), results[4]["kv_cache_bytes"].get<double>());
}

// --kv-type f16,q8_0 runs every method with both storages in one run; each method's Q8_0 rows
// hold fewer bytes than its F16 rows (stories260K's rows of 8: 10 bytes against 16).
TEST(BenchCommand, RunsEveryMethodWithEachKvType) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  test::CommandResult r = run_moa("bench -m '" + path +
                                  "' -p 0 -n 2 -r 1 --ctx 100 -t 1 --json --method dense,streaming "
                                  "--density 0.5 --sinks 4 --kv-type f16,q8_0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["kv_type"], "f16,q8_0");
  const auto& results = j["results"];
  ASSERT_EQ(results.size(), 4u);  // (f16, q8_0) x (dense, streaming)
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(results[i]["kv_type"], "f16");
    EXPECT_EQ(results[i + 2]["kv_type"], "q8_0");
    EXPECT_EQ(results[i]["method"], results[i + 2]["method"]);
    EXPECT_LT(results[i + 2]["kv_cache_bytes"].get<double>(),
              0.7 * results[i]["kv_cache_bytes"].get<double>());
  }
}

TEST(BenchCommand, PrintsATable) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  test::CommandResult r = run_moa("bench -m '" + path + "' -p 8 -n 2 -r 1 -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("|     pp8 |      0 |     1 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("|     tg2 |      0 |     1 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("memory bandwidth"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("KV MiB read"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("|  f16 |     pp8 |"), std::string::npos) << r.out;
}

TEST(BenchCommand, BusyNeighbourReportsLoadedOverQuietAndLeavesNoSpinner) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  test::CommandResult r =
      run_moa("bench -m '" + path + "' -p 8 -n 4 -r 1 -t 2 --ctx 0,64 --busy-neighbour --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  const auto& rows = j["busy_neighbour"];
  ASSERT_EQ(rows.size(), 4u);  // pp8 and tg4 at depths 0 and 64
  for (const auto& row : rows) {
    EXPECT_GT(row["quiet_tokens_per_second"].get<double>(), 0.0);
    EXPECT_GT(row["loaded_tokens_per_second"].get<double>(), 0.0);
    EXPECT_GT(row["loaded_over_quiet_time"].get<double>(), 0.0);
  }
  // The spinner's pid is logged; it must be gone once moa has exited.
  const std::string marker = "spinning process ";
  const size_t at = r.err.find(marker);
  ASSERT_NE(at, std::string::npos) << r.err;
  const pid_t spinner = static_cast<pid_t>(std::stol(r.err.substr(at + marker.size())));
  EXPECT_TRUE(kill(spinner, 0) != 0 && errno == ESRCH) << "spinner " << spinner << " survived";
}

// moa caps libgomp's spin-wait before the runtime starts, unless the user chose a policy.
TEST(BenchCommand, CapsTheOpenMpSpinUnlessTheUserSetAPolicy) {
  const std::string display = "OMP_DISPLAY_ENV=verbose ";
  test::CommandResult capped =
      run_moa("--help", "", "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT " + display);
  EXPECT_NE(capped.err.find("GOMP_SPINCOUNT = '10000'"), std::string::npos) << capped.err;
  test::CommandResult passive =
      run_moa("--help", "", "env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=passive " + display);
  EXPECT_NE(passive.err.find("GOMP_SPINCOUNT = '0'"), std::string::npos) << passive.err;
}

// On an AVX-512 CPU moa hands OpenBLAS its SkylakeX kernels (Debian's 0.3.21 misdetects newer
// CPUs and falls back to SSE3); a user's OPENBLAS_CORETYPE wins.
TEST(BenchCommand, PicksOpenBlasAvx512KernelsUnlessTheUserChoseACore) {
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vl");
  test::CommandResult chosen =
      run_moa("--help", "", "env -u OPENBLAS_CORETYPE OPENBLAS_VERBOSE=2 ");
  if (avx512) {
    EXPECT_NE(chosen.err.find("Core: SkylakeX"), std::string::npos) << chosen.err;
  }
  test::CommandResult user =
      run_moa("--help", "", "env OPENBLAS_CORETYPE=Prescott OPENBLAS_VERBOSE=2 ");
  EXPECT_NE(user.err.find("Core: Prescott"), std::string::npos) << user.err;
}

TEST(BenchCommand, BadOptions) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const std::string m = "bench -m '" + path + "' ";
  expect_one_line_error(run_moa(m + "-r 0"), "-r: 0 repeats");
  expect_one_line_error(run_moa(m + "-p 0 -n 0"), "give a positive prompt or generation size");
  expect_one_line_error(run_moa(m + "--ctx -5"), "--ctx: depth -5 is negative");
  expect_one_line_error(run_moa(m + "-b 0"), "--batch: 0");
  expect_one_line_error(run_moa(m + "--kv-type q9"), "q9");
  expect_one_line_error(run_moa("bench --random huge"), "--random: unknown shape 'huge'");
  expect_one_line_error(run_moa("bench"), "give a model with -m or a shape with --random");
}

TEST(Throughput, MedianOfOddAndEvenCounts) {
  EXPECT_DOUBLE_EQ(median({3.0, 1.0, 2.0}), 2.0);
  EXPECT_DOUBLE_EQ(median({4.0, 1.0, 2.0, 3.0}), 2.5);
  EXPECT_DOUBLE_EQ(median({}), 0.0);
}

}  // namespace
}  // namespace moa
