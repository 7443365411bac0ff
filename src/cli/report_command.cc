// `moa report RESULTS... -o FOLDER`: one self-contained HTML page, an SVG per figure and a
// Markdown summary from `moa eval` results files (docs/eval.md).
#include <fmt/format.h>

#include <filesystem>

#include "cli/commands.h"
#include "eval/eval_results.h"
#include "eval/report.h"
#include "util/error.h"

namespace moa::cli {

void register_report(CLI::App& app) {
  struct Options {
    std::vector<std::string> results;
    std::string folder = "report";
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "report", "HTML page, SVG figures and a Markdown summary from moa eval results files");
  cmd->add_option("results", o->results, "Results JSON files of moa eval")->required();
  cmd->add_option("-o,--output", o->folder, "Report folder")->capture_default_str();
  cmd->callback([o] {
    std::vector<nlohmann::json> results;
    for (const std::string& path : o->results) results.push_back(read_results_file(path));
    const Report report = build_report(results, o->results);
    write_report(report, o->folder);
    fmt::print("wrote {}/report.html, {}/summary.md and {} figures\n", o->folder, o->folder,
               report.figures.size());
  });
}

}  // namespace moa::cli
