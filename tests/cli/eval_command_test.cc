// `moa eval retrieval|ppl` and `moa report` end to end with the built binary: results files
// record what reproduces them, an interrupted run resumes (finished cases are kept, not rerun),
// bad input fails with one line, and the report page renders in headless Chromium with every
// figure in the DOM (skipped loudly without chromium).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/assets.h"

namespace moa {
namespace {

using nlohmann::json;
using test::expect_one_line_error;
using test::run_moa;

constexpr const char* kRetrieval =
    "eval retrieval -t 1 --lengths 512,640 -n 2 --methods dense,streaming --density 0.5 ";

json read_json(const std::string& path) { return json::parse(test::read_file(path)); }

TEST(EvalCommand, RetrievalRecordsTheRunAndResumesIt) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string out = test::temp_dir() + "/ret.json";
  test::CommandResult r = run_moa(std::string(kRetrieval) + "-m '" + model + "' -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = read_json(out);
  EXPECT_EQ(j["kind"], "retrieval");
  EXPECT_EQ(j["moa_version"], "0.1.0");
  EXPECT_EQ(j["settings"]["lengths"], json({512, 640}));
  EXPECT_EQ(j["settings"]["seed"], 1);
  EXPECT_FALSE(j["settings"]["model_hash"].get<std::string>().empty());
  ASSERT_EQ(j["cases"].size(), 8u);  // 2 methods x 2 lengths x 2 cases
  for (const json& c : j["cases"]) {
    for (const char* key : {"length", "depth", "expected", "answer", "correct", "n_tokens"}) {
      EXPECT_TRUE(c.contains(key)) << key;
    }
  }
  EXPECT_EQ(j["summary"][0]["by_length"][0]["count"], 2);
  EXPECT_NE(r.out.find("| dense"), std::string::npos);

  // An interrupted run: the last case missing, a kept case marked so a rerun would show.
  j["cases"].erase(j["cases"].size() - 1);
  j["cases"][0]["answer"] = "KEPT";
  std::ofstream(out) << j.dump();
  r = run_moa(std::string(kRetrieval) + "-m '" + model + "' -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("resumed 7 finished cases"), std::string::npos) << r.err;
  const json resumed = read_json(out);
  EXPECT_EQ(resumed["cases"].size(), 8u);
  EXPECT_EQ(resumed["cases"][0]["answer"], "KEPT");

  // Other settings into the same file are refused, naming the setting.
  r = run_moa("eval retrieval -t 1 --lengths 512 -n 2 -m '" + model + "' -o " + out);
  expect_one_line_error(r, "settings.");
}

TEST(EvalCommand, RejectsBadInputWithOneLine) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  MOA_REQUIRE_ASSET(other, "models/tiny-llama-k-F32.gguf");
  const std::string dir = test::temp_dir();
  const std::string m = " -m '" + model + "' ";
  expect_one_line_error(run_moa("eval retrieval --methods dense,flash" + m),
                        "method 'flash' is not known");
  expect_one_line_error(run_moa("eval retrieval --lengths 4096" + m), "beyond the model's context");
  std::ofstream(dir + "/bad.jsonl")
      << "{\"prompt\": \"p\", \"expected\": \"1\"}\n{\"prompt\": 7}\n";
  expect_one_line_error(run_moa("eval retrieval --cases " + dir + "/bad.jsonl" + m),
                        "line 2: prompt");
  ASSERT_EQ(run_moa("plan uniform -m '" + other + "' --window 32 --sinks 4 -o " + dir + "/p.json")
                .exit_code,
            0);
  expect_one_line_error(
      run_moa("eval retrieval --lengths 512 -n 1 --methods moa:" + dir + "/p.json" + m), "p.json");
  expect_one_line_error(run_moa("eval ppl -f /nonexistent.txt" + m), "/nonexistent.txt");
  expect_one_line_error(run_moa("report /nonexistent.json -o " + dir + "/r"), "/nonexistent.json");
}

TEST(EvalCommand, PerplexityScoresTheSecondHalfOfEachChunk) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string dir = test::temp_dir();
  std::string text;
  for (int i = 0; i < 6; ++i) text += "Lily went to the park with her mom. She saw a big dog. ";
  std::ofstream(dir + "/t.txt") << text;
  const test::CommandResult r = run_moa("eval ppl -t 1 -c 32 --methods dense,streaming -m '" +
                                        model + "' -f " + dir + "/t.txt -o " + dir + "/ppl.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = read_json(dir + "/ppl.json");
  EXPECT_EQ(j["kind"], "perplexity");
  const int64_t n_tokens = j["n_tokens"].get<int64_t>();
  for (const json& row : j["results"]) {
    EXPECT_EQ(row["n_chunks"].get<int64_t>(), n_tokens / 32);
    EXPECT_EQ(row["n_scored"].get<int64_t>(), (n_tokens / 32) * 15);
    EXPECT_GT(row["ppl"].get<double>(), 1.0);
  }
}

TEST(EvalCommand, PerplexityStrideScoresTheLastStrideTokensOfEachWindow) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string dir = test::temp_dir();
  std::string text;
  for (int i = 0; i < 6; ++i) text += "Lily went to the park with her mom. She saw a big dog. ";
  std::ofstream(dir + "/t.txt") << text;
  const std::string args = "eval ppl -t 1 -c 32 --methods dense -m '" + model + "' -f " + dir +
                           "/t.txt -o " + dir + "/ppl.json --stride ";
  const test::CommandResult r = run_moa(args + "16");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = read_json(dir + "/ppl.json");
  EXPECT_EQ(j["stride"], 16);
  const int64_t n_windows = (j["n_tokens"].get<int64_t>() - 32 + 15) / 16;
  EXPECT_EQ(j["results"][0]["n_chunks"].get<int64_t>(), n_windows);
  EXPECT_EQ(j["results"][0]["n_scored"].get<int64_t>(), n_windows * 16);
  expect_one_line_error(run_moa(args + "32"), "--stride");
  expect_one_line_error(run_moa(args + "-1"), "--stride");
}

// The page a report writes renders in headless Chromium: the DOM holds every figure.
TEST(ReportCommand, RendersInHeadlessChromiumWithEveryFigure) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string dir = test::temp_dir();
  ASSERT_EQ(
      run_moa(std::string(kRetrieval) + "-m '" + model + "' -o " + dir + "/ret.json").exit_code, 0);
  const test::CommandResult r = run_moa("report " + dir + "/ret.json -o " + dir + "/report");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> figures;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/report")) {
    if (e.path().extension() != ".svg") continue;
    figures.push_back(e.path().stem().string());
    const std::string svg = test::read_file(e.path().string());
    EXPECT_TRUE(svg.find("<circle") != svg.npos || svg.find("<rect x=") != svg.npos)
        << e.path() << " is empty";
  }
  EXPECT_EQ(figures.size(), 3u);  // accuracy vs length + a heat-map per method
  if (std::system("command -v chromium >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "\n*** chromium NOT INSTALLED: the report page was not rendered "
                    "(apt-get install chromium) ***\n";
  }
  const std::string profile = test::temp_dir();
  const std::string cmd =
      "timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
      "--disable-background-networking --disable-component-update --disable-sync "
      "--user-data-dir=" +
      profile + " --dump-dom file://" + dir + "/report/report.html > " + dir + "/dom.html 2> " +
      dir + "/chromium.err";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << test::read_file(dir + "/chromium.err");
  const std::string dom = test::read_file(dir + "/dom.html");
  for (const std::string& f : figures) {
    EXPECT_NE(dom.find("id=\"" + f + "\""), std::string::npos) << f;
  }
  EXPECT_EQ(test::read_file(dir + "/chromium.err").find("Uncaught"), std::string::npos);
}

}  // namespace
}  // namespace moa
