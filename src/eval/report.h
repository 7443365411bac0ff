// `moa report`: turns `moa eval` results files (retrieval, perplexity, speed) into one
// self-contained HTML page (inline SVG, no scripts, no external resources), the same figures as
// SVG files, and a Markdown summary table. Figures: accuracy vs length per method, accuracy
// heat-maps (length x needle-depth decile) per method, each referenced plan as a layer x KV head
// span heat-map, the optimizer's Pareto front when a plan records one, perplexity, throughput
// and KV-memory bars.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moa {

struct ReportFigure {
  std::string name;     // file stem, e.g. "retrieval-1-accuracy"
  std::string caption;  // one line under the figure
  std::string svg;
};

struct Report {
  std::vector<ReportFigure> figures;
  std::string markdown;  // summary tables
  std::string html;      // the page: tables and every figure inline
};

// `results` are parsed results files (read_results_file) and `names` their paths (captions).
// Plan files named by methods are read from their recorded paths; a missing or unreadable plan
// is noted in the summary instead of failing the report.
Report build_report(const std::vector<nlohmann::json>& results,
                    const std::vector<std::string>& names);

// Writes report.html, summary.md and one SVG per figure into `folder` (created if needed), each
// file atomically.
void write_report(const Report& report, const std::string& folder);

}  // namespace moa
