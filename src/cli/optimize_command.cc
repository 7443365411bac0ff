// `moa optimize`: an influence profile and density budgets in, a plan file out (METHOD.md s.4).
// Solves the Pareto front of per-length profiled losses with CBC (or the full-or-window shape),
// measures each candidate's answer loss on calibration samples of an unprofiled length with the
// sparse engine, prints the candidates' table with the choice marked, and writes the plan with
// its front. `--list-rules` prints the candidate rules instead.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <optional>

#include "cli/commands.h"
#include "gguf/gguf_file.h"
#include "optimize/plan_optimizer.h"
#include "optimize/validation_loss.h"
#include "plan/plan_io.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/progress.h"

namespace moa::cli {
namespace {

struct OptimizeCliOptions {
  std::string profile_path;
  std::string model_path;
  std::string calib_path;
  std::string output;
  std::vector<double> densities;
  std::vector<int64_t> lengths;
  std::string shape = "moa";
  int64_t validate_length = 0;
  int n_threads = 0;
  bool list_rules = false;
  OptimizeOptions run;
};

// One budget per --lengths entry (default: the profiled lengths); one --density serves all.
std::vector<DensityBudget> budgets_of(const OptimizeCliOptions& o, const InfluenceProfile& p) {
  std::vector<int64_t> lengths = o.lengths;
  if (lengths.empty()) {
    for (const ProfiledLength& l : p.lengths) lengths.push_back(l.length);
  }
  if (o.densities.size() != 1 && o.densities.size() != lengths.size()) {
    fail("--density: {} budgets for {} lengths; give one, or one per --lengths entry",
         o.densities.size(), lengths.size());
  }
  std::vector<DensityBudget> out;
  for (size_t i = 0; i < lengths.size(); ++i) {
    const double d = o.densities.size() == 1 ? o.densities[0] : o.densities[i];
    if (!(d > 0.0 && d <= 1.0)) fail("--density: {} is not in (0, 1]", d);
    if (lengths[i] < 1) fail("--lengths: {} is not a positive token count", lengths[i]);
    out.push_back({lengths[i], d});
  }
  return out;
}

void print_rules(const RuleGrid& grid, const InfluenceProfile& p) {
  fmt::print("{} candidate rules per KV head (alpha step {}, lengths {}..{}, sinks {})\n",
             grid.rules.size(), grid.alpha_step, grid.min_length, grid.max_length, p.sinks);
  std::string header = fmt::format("| rule | alpha | beta |");
  std::string rule = "|---|---|---|";
  std::vector<int64_t> at;
  for (const ProfiledLength& l : p.lengths) at.push_back(l.length);
  if (at.back() != grid.max_length) at.push_back(grid.max_length);
  for (int64_t n : at) {
    header += fmt::format(" span@{} |", n);
    rule += "---|";
  }
  fmt::print("{}\n{}\n", header, rule);
  for (size_t i = 0; i < grid.rules.size(); ++i) {
    const ElasticRule& r = grid.rules[i];
    std::string line = fmt::format("| {} | {:g} | {:.4g} |", i, r.alpha, r.beta);
    for (int64_t n : at) line += fmt::format(" {} |", r.span(n));
    fmt::print("{}\n", line);
  }
}

// Measures every candidate on the calibration samples at the validation length; returns that
// length, or 0 when there is nothing to validate on.
int64_t validate(OptimizeResult& r, const OptimizeCliOptions& o, const InfluenceProfile& p) {
  if (o.calib_path.empty()) {
    spdlog::info("no --calib: picking the plan with the least profiled loss at length {}",
                 p.lengths[r.objective].length);
    return 0;
  }
  const CalibrationSet set = read_calibration(o.calib_path);
  check_calibration_complete(set, o.calib_path);
  std::vector<int64_t> profiled;
  for (const ProfiledLength& l : p.lengths) profiled.push_back(l.length);
  const int64_t length =
      o.validate_length > 0 ? o.validate_length : default_validation_length(set, profiled);
  if (length == 0) {
    spdlog::warn("{}: no calibration length above the profiled ones: picking by profiled loss",
                 o.calib_path);
    return 0;
  }
  const Model model = Model::load(o.model_path);
  check_calibration_matches(set, p.model, model.config().n_vocab, o.calib_path);
  const std::vector<const CalibrationSample*> samples = samples_at(set, length, o.calib_path);
  const int threads = thread_count(o.n_threads);
  Progress progress(fmt::format("validating at length {}", length),
                    static_cast<int64_t>(r.candidates.size()));
  int64_t tokens = 0;
  for (const CalibrationSample* s : samples)
    tokens += static_cast<int64_t>(s->prompt.size() + s->answer.size());
  for (PlanCandidate& c : r.candidates) {
    c.validation_loss = plan_answer_loss(model, c.plan, samples, length, threads);
    progress.step(tokens);
  }
  return length;
}

void run_optimize(OptimizeCliOptions& o) {
  thread_count(o.n_threads);  // checked before the solves, though only validation uses it
  keep_from_overwrite(o.profile_path);
  if (!o.calib_path.empty()) keep_from_overwrite(o.calib_path);
  const gguf::GgufFile file = gguf::GgufFile::open(o.model_path);
  if (!o.output.empty()) check_output_path(o.output);  // before the solves
  const ModelConfig config = read_model_config(file);
  const InfluenceProfile profile = read_profile(o.profile_path);
  check_profile_matches(profile, identity_of(config, file.metadata_hash()), o.profile_path);
  if (profile.n_vocab != config.n_vocab) {
    fail("{}: profile is for a vocabulary of {} tokens, the model has {}", o.profile_path,
         profile.n_vocab, config.n_vocab);
  }
  o.run.shape = o.shape == "binary" ? PlanShape::kBinary : PlanShape::kElastic;
  if (o.list_rules) {
    print_rules(optimizer_rules(profile, config.n_ctx_train, o.run), profile);
    return;
  }
  if (o.densities.empty()) fail("--density: give the KV density budget (e.g. 0.5)");
  if (o.output.empty()) fail("-o: give the plan file to write");
  check_solver_options(o.run);
  if (o.validate_length > 0 && o.calib_path.empty())
    fail("--validate-length: needs --calib, the samples to run");
  o.run.budgets = budgets_of(o, profile);
  std::unique_ptr<Progress> progress;  // made at the first solve, when the total is known
  OptimizeResult r =
      optimize_plans(profile, config.n_ctx_train, o.run, [&](int64_t /*done*/, int64_t total) {
        if (!progress) progress = std::make_unique<Progress>("MILP solves", total);
        progress->step(0);
      });
  progress.reset();
  const int64_t validation_length = validate(r, o, profile);
  const size_t chosen = pick_candidate(r);
  std::vector<int64_t> profiled;
  for (const ProfiledLength& l : profile.lengths) profiled.push_back(l.length);
  print_candidates(r, profiled, o.run.budgets, chosen, validation_length);
  write_plan(chosen_plan(r, chosen, validation_length), o.output);
  fmt::print(stderr, "wrote {} (plan {} of {}, picked by {})\n", o.output, chosen,
             r.candidates.size(),
             validation_length > 0
                 ? fmt::format("validation loss at length {}", validation_length)
                 : fmt::format("profiled loss at length {}", profile.lengths[r.objective].length));
}

}  // namespace

void print_candidates(const OptimizeResult& r, const std::vector<int64_t>& profiled,
                      const std::vector<DensityBudget>& budgets, size_t chosen,
                      int64_t validation_length) {
  std::string header = "| plan |", rule = "|---|";
  for (int64_t n : profiled) {
    header += fmt::format(" loss@{} |", n);
    rule += "---|";
  }
  if (r.projected_length > 0) {
    header += fmt::format(" projected loss@{} |", r.projected_length);
    rule += "---|";
  }
  for (const DensityBudget& b : budgets) {
    header += fmt::format(" density@{} (≤ {:g}) |", b.length, b.density);
    rule += "---|";
  }
  header += validation_length > 0 ? fmt::format(" validation loss@{} |", validation_length) : "";
  rule += validation_length > 0 ? "---|" : "";
  fmt::print("{} solver | |\n{}---|---|\n", header, rule);
  for (size_t i = 0; i < r.candidates.size(); ++i) {
    const PlanCandidate& c = r.candidates[i];
    std::string line = fmt::format("| {} |", i);
    for (double loss : c.assignment.objectives) line += fmt::format(" {:.6g} |", loss);
    if (r.projected_length > 0) line += fmt::format(" {:.6g} |", c.assignment.projected_loss);
    for (double d : c.densities) line += fmt::format(" {:.4f} |", d);
    if (validation_length > 0) line += fmt::format(" {:.5f} |", c.validation_loss);
    const Assignment& a = c.assignment;
    fmt::print("{} {} | {} |\n", line,
               a.optimal ? "optimal" : fmt::format("time limit, gap {:.2f}%", 100.0 * a.gap),
               i == chosen ? "**chosen**" : "");
  }
}

void add_solver_options(CLI::App& cmd, OptimizeOptions& o) {
  cmd.add_option("--alpha-step", o.grid.alpha_step,
                 "Alpha grid step in tokens (default: longest profiled length / 16)");
  cmd.add_option("--points", o.pareto.points, "Boxes of the epsilon-constraint grid")
      ->capture_default_str();
  cmd.add_option("--time-limit", o.pareto.milp.time_limit_s, "Seconds per MILP solve")
      ->capture_default_str();
  cmd.add_option("--gap", o.pareto.milp.gap, "Relative optimality gap CBC may stop at")
      ->capture_default_str();
}

void check_solver_options(const OptimizeOptions& o) {
  if (o.pareto.points < 1) fail("--points: {} is not a positive count", o.pareto.points);
  if (!(o.pareto.milp.time_limit_s > 0.0 && std::isfinite(o.pareto.milp.time_limit_s)))
    fail("--time-limit: {} s is not a positive, finite time", o.pareto.milp.time_limit_s);
  if (!(o.pareto.milp.gap >= 0.0 && o.pareto.milp.gap < 1.0))
    fail("--gap: {} is not a fraction in [0, 1)", o.pareto.milp.gap);
}

void register_optimize(CLI::App& app) {
  auto o = std::make_shared<OptimizeCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "optimize", "Choose each KV head's elastic rule from an influence profile (MILP, CBC)");
  cmd->add_option("--profile", o->profile_path, "Influence profile (moa profile)")->required();
  cmd->add_option("-m,--model", o->model_path, "GGUF model the profile was made for")->required();
  cmd->add_option("--density", o->densities,
                  "KV density budget(s), sinks included: one, or one per --lengths entry")
      ->delimiter(',');
  cmd->add_option("--lengths", o->lengths, "Lengths the budgets hold at (default: the profiled)")
      ->delimiter(',');
  add_solver_options(*cmd, o->run);
  cmd->add_option("--betas", o->run.grid.betas, "Beta grid size: 0, 1/(B-1), ..., 1")
      ->capture_default_str();
  cmd->add_option("--min-length", o->run.grid.min_length,
                  "Shortest input the plan must serve (default: shortest profiled length)");
  cmd->add_option("--max-length", o->run.grid.max_length,
                  "Longest input the plan must serve (default: the model's context)");
  cmd->add_option("--min-density-ratio", o->run.min_density_ratio,
                  "Also keep density >= ratio x budget (e.g. 0.9; 0: no lower bound)");
  cmd->add_option("--max-rules-per-layer", o->run.max_rules_per_layer,
                  "At most K distinct rules per layer (0: no limit)");
  cmd->add_option("--objective-length", o->run.objective_length,
                  "Profiled length whose loss is minimised (default: the longest)");
  cmd->add_option("--calib", o->calib_path, "Calibration set for the validation pick");
  cmd->add_option("--validate-length", o->validate_length,
                  "Calibration length to validate at (default: longest above the profiled)");
  cmd->add_option("--shape", o->shape, "moa (elastic rules) or binary (full or sinks + window)")
      ->check(CLI::IsMember({"moa", "binary"}))
      ->capture_default_str();
  cmd->add_option("--window", o->run.window,
                  "Binary shape: the window (default: best on the grid)");
  cmd->add_option("-t,--threads", o->n_threads, "Threads for validation (default: all cores)");
  cmd->add_flag("--list-rules", o->list_rules, "Print the candidate rules and exit");
  cmd->add_option("-o,--output", o->output, "Plan file to write");
  cmd->callback([o] { run_optimize(*o); });
}

}  // namespace moa::cli
