// `moa compress` as a library: the whole MoA pipeline for one model and density budget —
// calibrate (profiling set, and a held-back set at the validation length) → profile → optimize
// (Pareto front) → validate (answer loss of each candidate at the validation length) → the
// chosen plan. Every stage keeps its result in a work folder: calibration and profiling resume
// after their last finished sample, the front and each candidate's validation loss are saved
// as they are found, so a run killed at any point reruns to the same plan. Defaults are derived
// from the model's context length so that one flag (the density) is enough.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "calibrate/calibrate.h"
#include "optimize/plan_optimizer.h"

namespace moa {

// What the user asked for; zeros mean "derive from the model" (resolve_compress_settings).
struct CompressOptions {
  std::vector<double> densities;         // one for every budgeted length, or one per length
  int64_t max_length = 0;                // longest input the plan serves; 0: the model's context
  int64_t validation_length = 0;         // 0: min(max_length, 4096)
  std::vector<int64_t> profile_lengths;  // empty: validation length / 4 and / 2
  int64_t samples = 0;                   // calibration samples per profiled length; 0: 8
  int64_t validation_samples = 0;        // held-back samples at the validation length; 0: samples
  int64_t sinks = -1;  // < 0: a quarter of the budget at the shortest profiled length, 4 .. 64
  CalibrateOptions calibrate;   // source, tasks, seed, answer budget, cue (lengths unused)
  OptimizeOptions optimize;     // grid, Pareto and solver settings (budgets unused)
  bool exact_backward = false;  // the profile stage's ProfileOptions::exact_backward
  int64_t memory_budget = -1;   // and its ProfileOptions::memory_budget
};

// The options with every default filled in for one model.
struct CompressSettings {
  ModelIdentity model;
  int64_t context_length = 0;
  int64_t max_length = 0;
  int64_t validation_length = 0;
  std::vector<int64_t> profile_lengths;
  int64_t samples = 0;
  int64_t validation_samples = 0;
  int64_t sinks = 0;
  CalibrateOptions calibrate;
  OptimizeOptions optimize;  // budgets: at every profiled length, the validation and max length
  bool exact_backward = false;
  int64_t memory_budget = -1;
};

// Fills the defaults and checks them against the model (lengths ordered and within its context,
// budgets in (0, 1], sinks below the shortest length); throws naming the setting.
CompressSettings resolve_compress_settings(const CompressOptions& options,
                                           const ModelConfig& config, const ModelIdentity& model);

// The settings as JSON: kept in the work folder so that a rerun with other settings is refused
// instead of mixing two runs' files.
std::string compress_settings_json(const CompressSettings& settings);

struct StageReport {
  std::string name;      // calibrate, profile, optimize, validate
  std::string output;    // the work file it wrote
  double seconds = 0.0;  // spent in this run
  bool resumed = false;  // its file existed when this run started
};

struct CompressResult {
  OptimizeResult optimized;  // candidates with their validation losses
  size_t chosen = 0;
  SparsePlan plan;  // the chosen plan with its front recorded
  std::vector<StageReport> stages;
};

// Called when a stage starts: its number (1-based), the stage count and a one-line description.
using StageStarted = std::function<void(int stage, int stages, const std::string& what)>;

// Runs (or resumes) every stage in `work_dir` (created if missing). `n_threads` and
// `show_progress` do not change the result. Throws when the work folder holds another run.
CompressResult compress_model(const Model& model, const CompressSettings& settings,
                              const std::string& work_dir, int n_threads, bool show_progress,
                              const StageStarted& stage_started);

// Bytes of the keys and values (F16) a plan's static cache holds for one sequence of `length`
// tokens, and the same for dense attention.
uint64_t plan_kv_bytes(const SparsePlan& plan, const ModelConfig& config, int64_t length);
uint64_t dense_kv_bytes(const ModelConfig& config, int64_t length);

}  // namespace moa
