// Report pages and summary tables from eval results (see report.h).
#include "eval/report.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

#include "eval/svg.h"
#include "plan/plan_io.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace moa {
namespace {

using nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A table rendered both as Markdown (summary.md) and HTML (the page).
struct Table {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

std::string markdown(const Table& t) {
  std::string out = "## " + t.title + "\n\n|";
  for (const auto& h : t.header) out += " " + h + " |";
  out += "\n|";
  for (size_t i = 0; i < t.header.size(); ++i) out += "---|";
  out += "\n";
  for (const auto& row : t.rows) {
    out += "|";
    for (const auto& cell : row) out += " " + cell + " |";
    out += "\n";
  }
  return out + "\n";
}

std::string html(const Table& t) {
  std::string out = "<h2>" + svg::escape(t.title) + "</h2>\n<table><tr>";
  for (const auto& h : t.header) out += "<th>" + svg::escape(h) + "</th>";
  out += "</tr>\n";
  for (const auto& row : t.rows) {
    out += "<tr>";
    for (const auto& cell : row) out += "<td>" + svg::escape(cell) + "</td>";
    out += "</tr>\n";
  }
  return out + "</table>\n";
}

struct Builder {
  Report report;
  std::vector<Table> tables;
  std::vector<std::string> notes;
  std::set<std::string> plans_drawn;

  void figure(std::string name, std::string caption, std::string svg_text) {
    report.figures.push_back({std::move(name), std::move(caption), std::move(svg_text)});
  }
};

std::string accuracy_cell(const json& a) {
  return fmt::format("{:.2f} ({}/{})", a["accuracy"].get<double>(), a["correct"].get<int64_t>(),
                     a["count"].get<int64_t>());
}

// A plan's spans as a layer x KV head heat-map at length n, and its Pareto front when recorded.
void add_plan(Builder& b, const std::string& path, int64_t n, const std::string& tag) {
  if (!b.plans_drawn.insert(path + "@" + std::to_string(n)).second) return;
  SparsePlan plan;
  try {
    plan = read_plan(path);
  } catch (const std::exception& e) {
    b.notes.push_back(fmt::format("plan {} not drawn: {}", path, e.what()));
    return;
  }
  svg::HeatMap m;
  m.title = fmt::format("Plan {}: span / N per head at N = {}", path, n);
  m.x_label = "KV head";
  m.y_label = "layer";
  for (size_t h = 0; h < plan.rules.at(0).size(); ++h) m.cols.push_back(std::to_string(h));
  for (size_t l = 0; l < plan.rules.size(); ++l) {
    m.rows.push_back(std::to_string(l));
    m.values.emplace_back();
    for (const ElasticRule& r : plan.rules[l]) {
      m.values.back().push_back(static_cast<double>(r.span(n)) / static_cast<double>(n));
    }
  }
  b.figure(tag + "-plan", fmt::format("Span S_h(N)/N of each layer and KV head of {}", path),
           svg::heat_map(m));
  if (plan.pareto.empty() || plan.density_budgets.empty() || plan.profiled_lengths.empty()) return;
  // One point per Pareto plan: its KV density at the last budget length against its profiled
  // loss at the longest profiled length (the plan file records both per point).
  svg::Series front{"Pareto front", {}};
  for (const ParetoPoint& p : plan.pareto)
    front.points.emplace_back(p.densities.back(), p.losses.back());
  std::sort(front.points.begin(), front.points.end());
  const std::string x = fmt::format("KV density at N = {}", plan.density_budgets.back().length);
  const std::string y = fmt::format("profiled loss at N = {}", plan.profiled_lengths.back());
  b.figure(tag + "-pareto", fmt::format("Optimizer's Pareto front recorded in {}", path),
           svg::line_chart({"Pareto front of " + path, x, y, {front}, false, false}));
}

void add_retrieval(Builder& b, const json& r, const std::string& name, const std::string& tag) {
  const json& settings = r["settings"];
  const std::string unit = settings.value("length_unit", "tokens");
  const std::string task = settings.value("task", "lines");
  svg::LineChart chart{fmt::format("{} retrieval accuracy vs length ({})", task, name),
                       fmt::format("input length ({})", unit),
                       "accuracy",
                       {},
                       true,
                       true,
                       true};
  Table t{fmt::format("{} retrieval: accuracy (correct/cases) by length — {}", task, name),
          {"method"},
          {}};
  std::set<int64_t> lengths;
  for (const json& s : r["summary"]) {
    for (const json& row : s["by_length"]) lengths.insert(row["length"].get<int64_t>());
  }
  for (int64_t l : lengths) t.header.push_back(std::to_string(l) + " " + unit);
  t.header.insert(t.header.end(), {"all", "effective length", "effective / mean span"});
  for (const json& s : r["summary"]) {
    svg::Series series{s["method"].get<std::string>(), {}};
    for (const json& row : s["by_length"]) {
      series.points.emplace_back(row["length"].get<double>(), row["accuracy"].get<double>());
    }
    chart.series.push_back(series);
  }
  b.figure(tag + "-accuracy",
           fmt::format("Accuracy vs input length per method ({}), threshold {}", name,
                       settings.value("threshold", 0.9)),
           svg::line_chart(chart));
  std::map<std::string, std::string> densities;  // streaming / h2o runs differ by density only
  for (const json& m : settings["methods"]) {
    const std::string kind = m.value("kind", "");
    if (kind == "streaming" || kind == "h2o") {
      densities[m["name"].get<std::string>()] =
          fmt::format(" @ density {:g}", m["density"].get<double>());
    }
  }
  for (const json& s : r["summary"]) {
    const std::string method = s["method"].get<std::string>();
    std::map<int64_t, json> by_length;
    for (const json& row : s["by_length"]) by_length[row["length"].get<int64_t>()] = row;
    std::vector<std::string> cells{method + densities[method]};
    for (int64_t l : lengths)
      cells.push_back(by_length.count(l) ? accuracy_cell(by_length[l]) : "–");
    const int64_t eff = s["effective_length"].get<int64_t>();
    cells.push_back(accuracy_cell(s["overall"]));
    cells.push_back(eff > 0 ? std::to_string(eff) : "none");
    cells.push_back(eff > 0 ? fmt::format("{:.2f}", s["effective_ratio"].get<double>()) : "–");
    t.rows.push_back(cells);

    svg::HeatMap m{fmt::format("{}: accuracy by length x needle depth", method),
                   "needle depth decile",
                   fmt::format("length ({})", unit),
                   {},
                   {},
                   {},
                   {}};
    for (int d = 0; d < 10; ++d) m.cols.push_back(fmt::format("{}%", d * 10));
    for (int64_t l : lengths) {
      m.rows.push_back(std::to_string(l));
      m.values.emplace_back(10, kNaN);
      m.notes.emplace_back(10);
    }
    for (const json& cell : s["by_length_decile"]) {
      const auto row = std::distance(lengths.begin(), lengths.find(cell["length"].get<int64_t>()));
      const int d = cell["decile"].get<int>();
      m.values[row][d] = cell["accuracy"].get<double>();
      m.notes[row][d] = fmt::format("n{}", cell["count"].get<int64_t>());
    }
    const size_t index = b.report.figures.size();
    b.figure(fmt::format("{}-heatmap-{}", tag, index),
             fmt::format("{} ({}): accuracy per length and needle-depth decile; nK = cases behind "
                         "a cell; grey = no cases at that depth",
                         method, name),
             svg::heat_map(m));
  }
  b.tables.push_back(t);
  const int64_t plan_length = lengths.empty() ? 1024 : *lengths.rbegin();
  for (const json& m : settings["methods"]) {
    const std::string plan = m.value("plan", "");
    if (!plan.empty()) {
      add_plan(b, plan, unit == "tokens" ? plan_length : 1024,
               fmt::format("{}-{}", tag, b.report.figures.size()));
    }
  }
}

void add_perplexity(Builder& b, const json& r, const std::string& name, const std::string& tag) {
  const int64_t stride = r.value("stride", int64_t{0});
  const std::string windows = stride > 0 ? fmt::format(", stride {}", stride) : "";
  Table t{fmt::format("Perplexity — {} (n_ctx {}{})", name, r.value("n_ctx", 0), windows),
          {"method", "PPL", "± error", "chunks", "scored tokens", "KV density"},
          {}};
  svg::BarChart chart{fmt::format("Perplexity per method ({})", name), "PPL", {}, {}};
  for (const json& row : r["results"]) {
    t.rows.push_back({row["method"].get<std::string>(),
                      fmt::format("{:.4f}", row["ppl"].get<double>()),
                      fmt::format("{:.5f}", row["ppl_error"].get<double>()),
                      std::to_string(row["n_chunks"].get<int64_t>()),
                      std::to_string(row["n_scored"].get<int64_t>()),
                      fmt::format("{:.3f}", row["kv_density"].get<double>())});
    chart.labels.push_back(row["method"].get<std::string>());
    chart.values.push_back(row["ppl"].get<double>());
  }
  b.tables.push_back(t);
  b.figure(tag + "-ppl", "Perplexity per method (llama-perplexity windowing)",
           svg::bar_chart(chart));
}

void add_speed(Builder& b, const json& r, const std::string& name, const std::string& tag) {
  Table t{fmt::format("Speed — {}", name),
          {"method", "test", "depth", "batch", "tok/s", "KV MiB", "KV density"},
          {}};
  svg::BarChart decode{fmt::format("Decode tok/s ({})", name), "tokens/s", {}, {}};
  svg::BarChart prefill{fmt::format("Prefill latency ({})", name), "ms per prompt", {}, {}};
  svg::BarChart memory{fmt::format("KV cache memory ({})", name), "MiB", {}, {}};
  for (const json& row : r["results"]) {
    const std::string method = row["method"].get<std::string>();
    const std::string test = row["test"].get<std::string>();
    // The short name ("streaming (window 260, 4 sinks)" -> "streaming") keeps labels legible.
    const std::string label = fmt::format("{} d{} b{}", method.substr(0, method.find(" (")),
                                          row["depth"].get<int64_t>(), row["batch"].get<int64_t>());
    const double mib = row["kv_cache_bytes"].get<double>() / (1024.0 * 1024.0);
    t.rows.push_back({method, test, std::to_string(row["depth"].get<int64_t>()),
                      std::to_string(row["batch"].get<int64_t>()),
                      fmt::format("{:.2f}", row["tokens_per_second"].get<double>()),
                      fmt::format("{:.3f}", mib),
                      fmt::format("{:.3f}", row["kv_density"].get<double>())});
    if (test.starts_with("tg")) {
      decode.labels.push_back(label);
      decode.values.push_back(row["tokens_per_second"].get<double>());
      memory.labels.push_back(label);
      memory.values.push_back(mib);
    } else {
      prefill.labels.push_back(label);
      prefill.values.push_back(1000.0 * row["median_seconds"].get<double>());
    }
  }
  b.tables.push_back(t);
  if (!decode.values.empty()) {
    b.figure(tag + "-decode", "Decode throughput per method, depth (d) and batch (b)",
             svg::bar_chart(decode));
    b.figure(tag + "-kv", "KV-cache bytes allocated per decode row", svg::bar_chart(memory));
  }
  if (!prefill.values.empty()) {
    b.figure(tag + "-prefill", "Prefill latency (median) per method and depth",
             svg::bar_chart(prefill));
  }
}

}  // namespace

Report build_report(const std::vector<json>& results, const std::vector<std::string>& names) {
  Builder b;
  for (size_t i = 0; i < results.size(); ++i) {
    const json& r = results[i];
    const std::string kind = r["kind"].get<std::string>();
    const std::string tag = fmt::format("{}-{}", kind, i + 1);
    const std::string name = std::filesystem::path(names[i]).filename().string();
    try {
      if (kind == "retrieval") add_retrieval(b, r, name, tag);
      if (kind == "perplexity") add_perplexity(b, r, name, tag);
      if (kind == "speed") add_speed(b, r, name, tag);
    } catch (const json::exception& e) {
      fail("{}: not a complete {} results file ({})", names[i], kind, e.what());
    }
  }
  Report& report = b.report;
  report.markdown = "# moa evaluation summary\n\nFrom: ";
  for (const std::string& n : names) report.markdown += "`" + n + "` ";
  report.markdown += "\n\n";
  std::string body;
  for (const Table& t : b.tables) {
    report.markdown += markdown(t);
    body += html(t);
  }
  for (const std::string& note : b.notes) {
    report.markdown += "- " + note + "\n";
    body += "<p class=\"note\">" + svg::escape(note) + "</p>\n";
  }
  for (const ReportFigure& f : report.figures) {
    body += fmt::format("<figure id=\"{}\">\n{}<figcaption>{}</figcaption>\n</figure>\n", f.name,
                        f.svg, svg::escape(f.caption));
  }
  report.html =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<title>moa evaluation report</title>\n<style>\n"
      "body{font-family:sans-serif;margin:24px;max-width:1400px}"
      "table{border-collapse:collapse;margin-bottom:16px}"
      "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
      "figure{display:inline-block;margin:8px;vertical-align:top}"
      "figcaption{font-size:12px;max-width:640px;color:#333}.note{color:#a00}\n"
      "</style>\n</head>\n<body>\n<h1>moa evaluation report</h1>\n" +
      body + "</body>\n</html>\n";
  return report;
}

void write_report(const Report& report, const std::string& folder) {
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  if (ec) fail("{}: cannot create the report folder ({})", folder, ec.message());
  const std::filesystem::path dir(folder);
  write_file_atomically((dir / "report.html").string(), report.html);
  write_file_atomically((dir / "summary.md").string(), report.markdown);
  for (const ReportFigure& f : report.figures) {
    write_file_atomically((dir / (f.name + ".svg")).string(), f.svg);
  }
}

}  // namespace moa
