// The calibrate → profile → optimize → validate pipeline over one work folder (see compress.h).
// Each stage's file is written atomically, so after a kill every file is either whole or absent
// and the rerun picks up at the first stage whose file is missing or unfinished.
#include "optimize/compress.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>

#include "optimize/validation_loss.h"
#include "plan/plan_io.h"
#include "profile/profiler.h"
#include "util/error.h"
#include "util/json_fields.h"
#include "util/progress.h"

namespace moa {
namespace {

constexpr int64_t kLongestDefaultValidation = 4096;  // dense calibration beyond this is slow
constexpr int64_t kDefaultSamples = 8;
constexpr int kStages = 5;

// A quarter of the budget at the shortest profiled length, 4 .. 64 (why: docs/optimizer.md).
int64_t default_sinks(const CompressSettings& s) {
  const int64_t shortest = s.profile_lengths.front();
  double budget = 1.0;
  for (const DensityBudget& b : s.optimize.budgets) {
    if (b.length == shortest) budget = b.density;
  }
  const auto quarter = static_cast<int64_t>(budget * static_cast<double>(shortest) / 4.0);
  return std::clamp<int64_t>(quarter, 4, kDefaultSinks);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot be read", path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

nlohmann::json settings_to_json(const CompressSettings& s) {
  nlohmann::json budgets = nlohmann::json::array();
  for (const DensityBudget& b : s.optimize.budgets)
    budgets.push_back({{"length", b.length}, {"density", b.density}});
  std::vector<std::string> tasks;
  for (TaskKind t : s.calibrate.tasks) tasks.emplace_back(task_kind_name(t));
  const OptimizeOptions& o = s.optimize;
  return {
      {"model", model_identity_to_json(s.model)},
      {"max_length", s.max_length},
      {"validation_length", s.validation_length},
      {"profile_lengths", s.profile_lengths},
      {"samples", s.samples},
      {"validation_samples", s.validation_samples},
      {"sinks", s.sinks},
      {"source", s.calibrate.source},
      {"tasks", tasks},
      {"seed", s.calibrate.seed},
      {"max_answer", s.calibrate.max_answer},
      {"stop_at_newline", s.calibrate.stop_at_newline},
      {"answer_cue", s.calibrate.answer_cue},
      {"budgets", budgets},
      {"alpha_step", o.grid.alpha_step},
      {"betas", o.grid.betas},
      {"min_length", o.grid.min_length},
      {"min_density_ratio", o.min_density_ratio},
      {"max_rules_per_layer", o.max_rules_per_layer},
      {"objective_length", o.objective_length},
      {"points", o.pareto.points},
      {"time_limit_s", o.pareto.milp.time_limit_s},
      {"gap", o.pareto.milp.gap},
      {"shape", o.shape == PlanShape::kBinary ? "binary" : "moa"},
      {"window", o.window},
  };
}

// Refuses a work folder made with other settings (naming the first setting that differs), else
// records these settings there.
void claim_work_dir(const CompressSettings& s, const std::string& dir) {
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/compress.json";
  const nlohmann::json mine = settings_to_json(s);
  if (std::filesystem::exists(path)) {
    nlohmann::json theirs;
    try {
      theirs = nlohmann::json::parse(read_text(path));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: not a compress settings file ({}); remove the work folder", path, e.what());
    }
    for (const auto& [key, value] : mine.items()) {
      if (!theirs.contains(key) || theirs[key] != value) {
        fail(
            "{}: the work folder belongs to a run with other settings ({}: {} there, {} now); "
            "remove it or choose another work folder",
            path, key, theirs.contains(key) ? theirs[key].dump() : "absent", value.dump());
      }
    }
    return;
  }
  json_fields::write_json_file(path, mine, 1);
}

// The front as found by the optimizer: candidate plans and their solver results.
void write_front(const OptimizeResult& r, const std::string& path) {
  nlohmann::json j = {
      {"version", 2}, {"objective", r.objective}, {"projected_length", r.projected_length}};
  j["candidates"] = nlohmann::json::array();
  for (const PlanCandidate& c : r.candidates) {
    j["candidates"].push_back({{"plan", nlohmann::json::parse(plan_to_json(c.plan))},
                               {"rule_of_head", c.assignment.rule_of_head},
                               {"objectives", c.assignment.objectives},
                               {"projected_loss", c.assignment.projected_loss},
                               {"optimal", c.assignment.optimal},
                               {"gap", c.assignment.gap}});
  }
  json_fields::write_json_file(path, j);
}

OptimizeResult read_front(const std::string& path, const RuleGrid& grid,
                          const std::vector<DensityBudget>& budgets) {
  OptimizeResult r;
  r.grid = grid;
  try {
    const nlohmann::json j = nlohmann::json::parse(read_text(path));
    if (j.at("version").get<int>() != 2) fail("{}: version {} (expected 2)", path, j["version"]);
    r.objective = j.at("objective").get<size_t>();
    r.projected_length = j.at("projected_length").get<int64_t>();
    for (const nlohmann::json& c : j.at("candidates")) {
      PlanCandidate candidate;
      candidate.plan = plan_from_json(c.at("plan").dump(), path);
      candidate.assignment.rule_of_head = c.at("rule_of_head").get<std::vector<int64_t>>();
      candidate.assignment.objectives = c.at("objectives").get<std::vector<double>>();
      candidate.assignment.projected_loss = c.at("projected_loss").get<double>();
      candidate.assignment.optimal = c.at("optimal").get<bool>();
      candidate.assignment.gap = c.at("gap").get<double>();
      for (const DensityBudget& b : budgets)
        candidate.densities.push_back(kv_density(candidate.plan, b.length));
      r.candidates.push_back(std::move(candidate));
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: unreadable optimizer front ({}); remove it to solve again", path, e.what());
  }
  if (r.candidates.empty()) fail("{}: no candidate plans; remove it to solve again", path);
  return r;
}

// Validation losses found so far (< 0: not measured yet), one per candidate.
std::vector<double> read_losses(const std::string& path, size_t candidates) {
  std::vector<double> losses(candidates, -1.0);
  if (!std::filesystem::exists(path)) return losses;
  try {
    losses = nlohmann::json::parse(read_text(path)).at("losses").get<std::vector<double>>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: unreadable validation losses ({}); remove it to measure again", path, e.what());
  }
  if (losses.size() != candidates)
    fail("{}: {} losses for {} candidates; remove it to measure again", path, losses.size(),
         candidates);
  return losses;
}

class StageClock {
 public:
  StageClock(std::vector<StageReport>& reports, const StageStarted& started, std::string name,
             std::string output, const std::string& what)
      : reports_(reports), start_(std::chrono::steady_clock::now()) {
    report_.name = std::move(name);
    report_.resumed = std::filesystem::exists(output);
    report_.output = std::move(output);
    if (started) started(static_cast<int>(reports.size()) + 1, kStages, what);
  }
  void done() {
    report_.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    reports_.push_back(report_);
  }

 private:
  std::vector<StageReport>& reports_;
  StageReport report_;
  std::chrono::steady_clock::time_point start_;
};

std::string join(const std::vector<int64_t>& v) {
  std::string out;
  for (int64_t n : v) out += fmt::format("{}{}", out.empty() ? "" : ",", n);
  return out;
}

}  // namespace

CompressSettings resolve_compress_settings(const CompressOptions& o, const ModelConfig& config,
                                           const ModelIdentity& model) {
  CompressSettings s;
  s.model = model;
  s.context_length = config.n_ctx_train;
  if (s.context_length < 1) fail("the model declares no context length");
  s.max_length = o.max_length > 0 ? o.max_length : s.context_length;
  if (s.max_length > s.context_length)
    fail("longest input {} exceeds the model's context of {} tokens", s.max_length,
         s.context_length);
  s.validation_length = o.validation_length > 0 ? o.validation_length
                                                : std::min(s.max_length, kLongestDefaultValidation);
  if (s.validation_length > s.max_length)
    fail("validation length {} exceeds the longest input {}", s.validation_length, s.max_length);
  s.profile_lengths = o.profile_lengths;
  if (s.profile_lengths.empty())
    s.profile_lengths = {s.validation_length / 4, s.validation_length / 2};
  for (size_t i = 0; i < s.profile_lengths.size(); ++i) {
    const int64_t n = s.profile_lengths[i];
    if (n < 1 || (i > 0 && n <= s.profile_lengths[i - 1]))
      fail("profiled lengths {}: expected positive lengths in increasing order",
           join(s.profile_lengths));
    if (n >= s.validation_length)
      fail(
          "profiled length {} is not below the validation length {} (validation needs a longer, "
          "unprofiled length)",
          n, s.validation_length);
  }
  s.samples = o.samples > 0 ? o.samples : kDefaultSamples;
  s.validation_samples = o.validation_samples > 0 ? o.validation_samples : s.samples;
  s.calibrate = o.calibrate;
  s.optimize = o.optimize;
  s.exact_backward = o.exact_backward;
  s.memory_budget = o.memory_budget;
  s.optimize.grid.max_length = s.max_length;
  std::vector<int64_t> lengths = s.profile_lengths;
  lengths.push_back(s.validation_length);
  lengths.push_back(s.max_length);
  std::sort(lengths.begin(), lengths.end());
  lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
  if (o.densities.size() != 1 && o.densities.size() != lengths.size())
    fail("{} density budgets for the {} budgeted lengths ({}): give one, or one per length",
         o.densities.size(), lengths.size(), join(lengths));
  s.optimize.budgets.clear();
  for (size_t i = 0; i < lengths.size(); ++i) {
    const double d = o.densities.size() == 1 ? o.densities[0] : o.densities[i];
    if (!(d > 0.0 && d <= 1.0)) fail("density budget {} is not in (0, 1]", d);
    s.optimize.budgets.push_back({lengths[i], d});
  }
  s.sinks = o.sinks >= 0 ? o.sinks : default_sinks(s);
  if (s.sinks >= s.profile_lengths[0])
    fail("{} sinks leave no band at the shortest profiled length {}", s.sinks,
         s.profile_lengths[0]);
  // Refused before hours of calibration rather than after: the optimizer's own check, early.
  const RuleGrid grid = candidate_rules(s.optimize.grid, s.profile_lengths, s.context_length);
  for (const DensityBudget& b : s.optimize.budgets) {
    int64_t least = b.length;
    for (const ElasticRule& r : grid.rules)
      least = std::min(least, kept_keys(b.length, r.span(b.length), s.sinks));
    const double density = static_cast<double>(least) / static_cast<double>(b.length);
    if (b.density < density)
      fail(
          "density budget {} at length {} is infeasible: the smallest KV density the candidate "
          "rules reach there is {:.4g} (sinks included)",
          b.density, b.length, density);
  }
  return s;
}

std::string compress_settings_json(const CompressSettings& s) {
  return json_fields::json_text(settings_to_json(s), 1);
}

CompressResult compress_model(const Model& model, const CompressSettings& s,
                              const std::string& work_dir, int n_threads, bool show_progress,
                              const StageStarted& stage_started) {
  CalibrateOptions profiling = s.calibrate, held_back = s.calibrate;
  profiling.lengths = s.profile_lengths;
  profiling.samples_per_length = s.samples;
  held_back.lengths = {s.validation_length};
  held_back.samples_per_length = s.validation_samples;
  profiling.n_threads = held_back.n_threads = n_threads;
  check_calibrate_options(profiling, model);
  check_calibrate_options(held_back, model);
  claim_work_dir(s, work_dir);

  CompressResult result;
  const std::string calib_path = work_dir + "/calibration.json";
  const std::string held_path = work_dir + "/validation-set.json";
  const std::string profile_path = work_dir + "/model.profile";
  const std::string front_path = work_dir + "/front.json";
  const std::string losses_path = work_dir + "/validation-losses.json";

  StageClock calib_clock(
      result.stages, stage_started, "calibrate", calib_path,
      fmt::format("calibrate: {} samples at lengths {}", s.samples, join(s.profile_lengths)));
  const CalibrationSet set = calibrate(model, profiling, calib_path, show_progress);
  calib_clock.done();

  StageClock held_clock(result.stages, stage_started, "calibrate held-back", held_path,
                        fmt::format("calibrate held-back: {} samples at the validation length {}",
                                    s.validation_samples, s.validation_length));
  const CalibrationSet held = calibrate(model, held_back, held_path, show_progress);
  held_clock.done();

  StageClock profile_clock(
      result.stages, stage_started, "profile", profile_path,
      fmt::format("profile: {} samples, {} sinks", set.samples.size(), s.sinks));
  const ProfileOptions profile_options{s.sinks, n_threads, s.exact_backward, s.memory_budget};
  check_profile_inputs(set, calib_path, model, profile_options);
  const InfluenceProfile profile =
      profile_calibration(model, set, calib_path, profile_options, profile_path, show_progress);
  profile_clock.done();

  StageClock optimize_clock(
      result.stages, stage_started, "optimize", front_path,
      fmt::format("optimize: {} plan at {} budgeted lengths",
                  s.optimize.shape == PlanShape::kBinary ? "full-or-window" : "Pareto front of the",
                  s.optimize.budgets.size()));
  if (std::filesystem::exists(front_path)) {
    result.optimized = read_front(
        front_path, optimizer_rules(profile, s.context_length, s.optimize), s.optimize.budgets);
  } else {
    std::unique_ptr<Progress> progress;  // made at the first solve, when the total is known
    result.optimized =
        optimize_plans(profile, s.context_length, s.optimize, [&](int64_t /*done*/, int64_t total) {
          if (!progress)
            progress = std::make_unique<Progress>("MILP solves", total, 0, show_progress);
          progress->step(0);
        });
    write_front(result.optimized, front_path);
  }
  optimize_clock.done();

  std::vector<PlanCandidate>& candidates = result.optimized.candidates;
  StageClock validate_clock(result.stages, stage_started, "validate", losses_path,
                            fmt::format("validate: answer loss of {} candidate plans at length {}",
                                        candidates.size(), s.validation_length));
  std::vector<double> losses = read_losses(losses_path, candidates.size());
  const std::vector<const CalibrationSample*> samples =
      samples_at(held, s.validation_length, held_path);
  const auto finished = static_cast<int64_t>(
      std::count_if(losses.begin(), losses.end(), [](double l) { return l >= 0.0; }));
  Progress progress("candidates validated", static_cast<int64_t>(candidates.size()), finished,
                    show_progress);
  int64_t tokens = 0;
  for (const CalibrationSample* sample : samples)
    tokens += static_cast<int64_t>(sample->prompt.size() + sample->answer.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (losses[i] < 0.0) {
      losses[i] =
          plan_answer_loss(model, candidates[i].plan, samples, s.validation_length, n_threads);
      json_fields::write_json_file(losses_path, nlohmann::json({{"losses", losses}}));
      progress.step(tokens);
    }
    candidates[i].validation_loss = losses[i];
  }
  validate_clock.done();

  result.chosen = pick_candidate(result.optimized);
  result.plan = chosen_plan(result.optimized, result.chosen, s.validation_length);
  return result;
}

uint64_t plan_kv_bytes(const SparsePlan& plan, const ModelConfig& config, int64_t length) {
  uint64_t keys = 0;
  for (const std::vector<ElasticRule>& layer : plan.rules) {
    for (const ElasticRule& r : layer)
      keys += static_cast<uint64_t>(kept_keys(length, r.span(length), plan.sinks));
  }
  return keys * static_cast<uint64_t>(config.head_dim) * 2 * sizeof(uint16_t);  // K and V, F16
}

uint64_t dense_kv_bytes(const ModelConfig& config, int64_t length) {
  return static_cast<uint64_t>(config.n_layer * config.n_head_kv * length * config.head_dim) * 2 *
         sizeof(uint16_t);
}

}  // namespace moa
