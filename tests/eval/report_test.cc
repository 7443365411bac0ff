// `moa report` pages from results objects: every expected figure is drawn (accuracy vs length,
// a heat-map per method, the plan and its Pareto front, perplexity, speed and KV bars), every
// SVG has drawn elements, the page inlines them with no scripts or external resources, and the
// Markdown summary carries the tables with case counts.
#include "eval/report.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "eval/eval_results.h"
#include "plan/plan_io.h"
#include "support/assets.h"

namespace moa {
namespace {

using nlohmann::json;

std::string write_plan_with_pareto(const std::string& dir) {
  ModelIdentity id{"llama", 2, 4, 2, ""};
  SparsePlan plan = uniform_plan(id, 64, 4);
  plan.rules[1][0] = {0.0, 1.0};
  plan.profiled_lengths = {256};
  plan.density_budgets = {{512, 0.5}};
  plan.pareto = {{{0.25}, {2.0}, -1.0, false}, {{0.5}, {1.0}, 0.7, true}};
  const std::string path = dir + "/plan.json";
  write_plan(plan, path);
  return path;
}

json retrieval_results(const std::string& plan) {
  RetrievalSettings s;
  s.lengths = {256, 512};
  s.methods = {{"dense", "dense", 1.0, 0, "", ""}, {"moa:" + plan, "moa", 1.0, 0, plan, "x"}};
  std::vector<CaseRecord> records;
  for (const std::string& m : std::vector<std::string>{"dense", "moa:" + plan}) {
    for (int64_t len : {256, 512}) {
      for (int i = 0; i < 4; ++i) {
        records.push_back(
            {m, fmt::format("{}-{}", len, i), len, len, i / 3.0, "1", "1", m == "dense" || i > 0});
      }
    }
  }
  const auto summary = summarize_retrieval(records, {"dense", "moa:" + plan}, 0.9,
                                           [](const std::string&, int64_t) { return 0.5; });
  return retrieval_results_json(s, records, summary);
}

TEST(Report, DrawsEveryFigureWithContentAndInlinesThem) {
  const std::string dir = test::temp_dir();
  const std::string plan = write_plan_with_pareto(dir);
  const json ppl{{"kind", "perplexity"},
                 {"n_ctx", 64},
                 {"results",
                  {{{"method", "dense"},
                    {"ppl", 5.0},
                    {"ppl_error", 0.1},
                    {"n_chunks", 2},
                    {"n_scored", 62},
                    {"kv_density", 1.0}}}}};
  ThroughputResult row;
  row.method = "dense";
  row.test = "tg8";
  row.tokens_per_second = 10.0;
  row.kv_cache_bytes = 1 << 20;
  ThroughputResult pp = row;
  pp.test = "pp16";
  pp.median_seconds = 0.1;
  const json speed{{"kind", "speed"}, {"results", throughput_rows_json({pp, row})}};
  const Report r =
      build_report({retrieval_results(plan), ppl, speed}, {"ret.json", "ppl.json", "speed.json"});
  std::vector<std::string> names;
  for (const ReportFigure& f : r.figures) names.push_back(f.name);
  auto has = [&](const std::string& part) {
    return std::any_of(names.begin(), names.end(),
                       [&](const std::string& n) { return n.find(part) != std::string::npos; });
  };
  for (const char* part :
       {"accuracy", "heatmap", "plan", "pareto", "ppl", "decode", "kv", "prefill"}) {
    EXPECT_TRUE(has(part)) << part;
  }
  EXPECT_EQ(std::count_if(names.begin(), names.end(),
                          [](const std::string& n) { return n.find("heatmap") != n.npos; }),
            2);
  for (const ReportFigure& f : r.figures) {
    EXPECT_TRUE(f.svg.starts_with("<svg")) << f.name;
    EXPECT_TRUE(f.svg.find("<circle") != f.svg.npos || f.svg.find("<polyline") != f.svg.npos ||
                f.svg.find("<rect x=") != f.svg.npos)
        << f.name << " draws nothing";
    EXPECT_NE(r.html.find("id=\"" + f.name + "\""), std::string::npos) << f.name;
  }
  EXPECT_EQ(r.html.find("<script"), std::string::npos);
  EXPECT_EQ(r.html.find("http://www.w3.org/2000/svg\"") == std::string::npos, false);
  EXPECT_EQ(r.html.find("href="), std::string::npos);
  EXPECT_NE(r.markdown.find("| dense | 1.00 (4/4) | 1.00 (4/4) |"), std::string::npos)
      << r.markdown;
  EXPECT_NE(r.markdown.find("0.75 (3/4)"), std::string::npos);
  write_report(r, dir + "/out");
  EXPECT_TRUE(std::filesystem::exists(dir + "/out/report.html"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/out/summary.md"));
  for (const ReportFigure& f : r.figures) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/out/" + f.name + ".svg")) << f.name;
  }
}

TEST(Report, NotesAMissingPlanAndToleratesNoParetoFront) {
  json r = retrieval_results("/nonexistent/plan.json");
  const Report report = build_report({r}, {"ret.json"});
  EXPECT_NE(report.markdown.find("plan /nonexistent/plan.json not drawn"), std::string::npos);
  for (const ReportFigure& f : report.figures) EXPECT_EQ(f.name.find("pareto"), f.name.npos);
}

}  // namespace
}  // namespace moa
