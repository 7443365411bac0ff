// `moa compress`: the whole MoA pipeline in one command (calibrate → profile → optimize →
// validate, src/optimize/compress.h) with defaults derived from the model's context length.
// Prints each stage as it starts and, at the end, the candidates with the choice marked, the
// chosen plan's density at every budgeted length, its spans, the time per stage and the KV
// cache it needs at the longest length next to dense. A killed run resumes from --work-dir.
#include <fmt/format.h>
#include <unistd.h>

#include <memory>

#include "cli/commands.h"
#include "optimize/compress.h"
#include "plan/plan_io.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/progress.h"

namespace moa::cli {
namespace {

struct CompressCliOptions {
  std::string model_path;
  std::string output;
  std::string work_dir;
  std::string shape = "moa";
  std::vector<std::string> tasks = {"lines", "passkey", "kv"};
  bool no_answer_cue = false;
  bool map_model = false;
  int n_threads = 0;
  int64_t memory_budget_mib = -1;
  CompressOptions run;
};

std::string default_work_dir(const std::string& output) {
  const std::string stem =
      output.size() > 5 && output.ends_with(".json") ? output.substr(0, output.size() - 5) : output;
  return stem + ".work";
}

void check_flags(const CompressCliOptions& o) {
  if (o.run.densities.empty()) fail("--density: give the KV density budget (e.g. 0.5)");
  for (double d : o.run.densities) {
    if (!(d > 0.0 && d <= 1.0)) fail("--density: {} is not in (0, 1]", d);
  }
  if (o.output.empty()) fail("-o: give the plan file to write");
  if (o.run.max_length < 0) fail("--max-length: {} is negative", o.run.max_length);
  if (o.run.validation_length < 0)
    fail("--validate-length: {} is negative", o.run.validation_length);
  for (int64_t n : o.run.profile_lengths) {
    if (n < 1) fail("--lengths: {} is not a positive token count", n);
  }
  if (o.run.samples < 0) fail("-n: {} samples is negative", o.run.samples);
  if (o.run.validation_samples < 0)
    fail("--validation-samples: {} is negative", o.run.validation_samples);
  check_solver_options(o.run.optimize);
}

void print_plan(const SparsePlan& plan, const CompressSettings& s) {
  fmt::print("\nchosen plan: KV density per budgeted length\n");
  fmt::print("| length | budget | KV density | causal-area density |\n|---|---|---|---|\n");
  for (const DensityBudget& b : s.optimize.budgets) {
    fmt::print("| {} | {:g} | {:.4f} | {:.4f} |\n", b.length, b.density, kv_density(plan, b.length),
               causal_area_density(plan, b.length));
  }
  const int64_t n = s.validation_length;
  fmt::print("\nspans at length {} (layer x KV head; sinks {})\n{:>5}", n, plan.sinks, "layer");
  for (int64_t h = 0; h < plan.model.n_head_kv; ++h) fmt::print(" {:>6}", fmt::format("kv{}", h));
  fmt::print("\n");
  for (size_t l = 0; l < plan.rules.size(); ++l) {
    fmt::print("{:>5}", l);
    for (const ElasticRule& r : plan.rules[l]) fmt::print(" {:>6}", r.span(n));
    fmt::print("\n");
  }
}

void print_stages(const CompressResult& r) {
  fmt::print("\n| stage | work file | time |\n|---|---|---|\n");
  double total = 0.0;
  for (const StageReport& st : r.stages) {
    fmt::print("| {} | {} | {}{} |\n", st.name, st.output, format_duration(st.seconds),
               st.resumed ? " (resumed)" : "");
    total += st.seconds;
  }
  fmt::print("| total | | {} |\n", format_duration(total));
}

void run_compress(CompressCliOptions& o) {
  o.run.memory_budget = memory_budget_bytes(o.memory_budget_mib);
  keep_freed_memory_for_reuse();
  check_flags(o);
  o.n_threads = thread_count(o.n_threads);
  o.run.calibrate.tasks.clear();
  for (const std::string& name : o.tasks) o.run.calibrate.tasks.push_back(parse_task_kind(name));
  o.run.calibrate.answer_cue = !o.no_answer_cue;
  o.run.optimize.shape = o.shape == "binary" ? PlanShape::kBinary : PlanShape::kElastic;
  const std::string work_dir = o.work_dir.empty() ? default_work_dir(o.output) : o.work_dir;
  keep_from_overwrite(o.run.calibrate.source);  // a source text, if it names a file
  const Model model = Model::load(o.model_path, model_file_load(o.map_model));
  check_output_path(o.output);  // before the five stages
  const ModelConfig& config = model.config();
  CompressSettings s;
  try {
    s = resolve_compress_settings(o.run, config, identity_of(config, model.file().metadata_hash()));
  } catch (const Error& e) {
    fail("--density/--lengths/--validate-length/--max-length/--sinks: {}", e.what());
  }
  const CompressResult r = compress_model(
      model, s, work_dir, o.n_threads, isatty(STDERR_FILENO) != 0,
      [&](int stage, int stages, const std::string& what) {
        if (stage == 1) {  // after the work folder was accepted: errors stay one line
          fmt::print(stderr,
                     "compressing {} (context {}): plan for inputs up to {} tokens, "
                     "work in {}\n",
                     o.model_path, s.context_length, s.max_length, work_dir);
        }
        fmt::print(stderr, "[{}/{}] {}\n", stage, stages, what);
      });
  write_plan(r.plan, o.output);
  fmt::print("\ncandidates (profiled loss per length; answer loss on held-back samples)\n");
  print_candidates(r.optimized, s.profile_lengths, s.optimize.budgets, r.chosen,
                   s.validation_length);
  print_plan(r.plan, s);
  print_stages(r);
  const uint64_t sparse = plan_kv_bytes(r.plan, config, s.max_length),
                 dense = dense_kv_bytes(config, s.max_length);
  fmt::print(
      "\nKV cache at {} tokens (K+V, F16, one sequence): {} B with the plan, {} B dense "
      "({:.1f}%)\n",
      s.max_length, sparse, dense,
      100.0 * static_cast<double>(sparse) / static_cast<double>(dense));
  fmt::print(stderr, "wrote {} (plan {} of {}, picked by answer loss at length {})\n", o.output,
             r.chosen, r.optimized.candidates.size(), s.validation_length);
}

}  // namespace

void register_compress(CLI::App& app) {
  auto o = std::make_shared<CompressCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "compress", "Calibrate, profile, optimize and validate: a MoA plan for a density budget");
  cmd->add_option("-m,--model", o->model_path, "GGUF model file")->required();
  cmd->add_option("--density", o->run.densities,
                  "KV density budget(s), sinks included: one, or one per budgeted length")
      ->delimiter(',');
  cmd->add_option("-o,--output", o->output, "Plan file to write");
  cmd->add_option("--work-dir", o->work_dir,
                  "Folder for the stages' files, resumed if present (default: OUTPUT.work)");
  cmd->add_option("--max-length", o->run.max_length,
                  "Longest input the plan serves (default: the model's context)");
  cmd->add_option("--validate-length", o->run.validation_length,
                  "Held-back calibration length the pick is made at (default: min(max, 4096))");
  cmd->add_option("--lengths", o->run.profile_lengths,
                  "Profiled lengths (default: validation length / 4 and / 2)")
      ->delimiter(',');
  cmd->add_option("-n,--samples", o->run.samples, "Calibration samples per profiled length (8)");
  cmd->add_option("--validation-samples", o->run.validation_samples,
                  "Held-back samples at the validation length (default: as -n)");
  cmd->add_option(
      "--sinks", o->run.sinks,
      "Sink tokens G (default: a quarter of the budget at the shortest profiled length, 4 .. "
      "64)");
  cmd->add_option("--source", o->run.calibrate.source,
                  "builtin, a .jsonl file of {\"context\",\"question\"}, a text file, or a folder")
      ->capture_default_str();
  cmd->add_option("--tasks", o->tasks, "Built-in tasks in rotation: lines, passkey, kv")
      ->delimiter(',')
      ->capture_default_str();
  add_seed_option(*cmd, o->run.calibrate.seed, "Seed of the generated prompts")
      ->capture_default_str();
  cmd->add_option("--max-answer", o->run.calibrate.max_answer, "Answer tokens at most")
      ->capture_default_str();
  cmd->add_flag("--no-answer-cue", o->no_answer_cue,
                "Built-in prompts end with the question (for chat models), not the answer's start");
  cmd->add_option("--shape", o->shape, "moa (elastic rules) or binary (full or sinks + window)")
      ->check(CLI::IsMember({"moa", "binary"}))
      ->capture_default_str();
  add_solver_options(*cmd, o->run.optimize);
  cmd->add_option("-t,--threads", o->n_threads, "Threads (default: all cores)");
  add_backward_memory_options(*cmd, o->memory_budget_mib, o->run.exact_backward);
  add_mmap_flag(*cmd, o->map_model);
  cmd->callback([o] { run_compress(*o); });
}

}  // namespace moa::cli
