// `moa calibrate`: builds the calibration set profiling runs on (METHOD.md s.2): long-range
// prompts at each length in this model's tokens, answered greedily by the dense model. Prints
// per length how many samples were made, their mean prompt length, and how often the dense
// answer contains the task's true answer (built-in tasks).
#include <fmt/format.h>
#include <unistd.h>

#include <map>
#include <memory>

#include "calibrate/calibrate.h"
#include "cli/commands.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace moa::cli {
namespace {

struct CalibrateCliOptions {
  std::string model_path;
  std::string output;
  std::vector<std::string> tasks = {"lines", "passkey", "kv"};
  bool no_newline_stop = false;
  bool no_answer_cue = false;
  bool map_model = false;
  int n_threads = 0;
  CalibrateOptions run;
};

void print_summary(const CalibrationSet& set) {
  std::map<int64_t, std::vector<const CalibrationSample*>> by_length;
  for (const CalibrationSample& s : set.samples) by_length[s.length].push_back(&s);
  fmt::print(
      "| length | samples | mean prompt tokens | mean answer tokens | dense answer correct |\n");
  fmt::print("|---|---|---|---|---|\n");
  for (const auto& [length, samples] : by_length) {
    double prompt = 0, answer = 0;
    int scored = 0, correct = 0;
    for (const CalibrationSample* s : samples) {
      prompt += static_cast<double>(s->prompt.size());
      answer += static_cast<double>(s->answer.size());
      if (s->expected.empty()) continue;
      ++scored;
      if (s->answer_text.find(s->expected) != std::string::npos) ++correct;
    }
    const auto n = static_cast<double>(samples.size());
    fmt::print("| {} | {} | {:.0f} | {:.1f} | {} |\n", length, samples.size(), prompt / n,
               answer / n, scored > 0 ? fmt::format("{}/{}", correct, scored) : "-");
  }
}

void run_calibrate(CalibrateCliOptions& o) {
  if (o.output.empty()) fail("-o: give the calibration set's output path");
  for (int64_t n : o.run.lengths) {
    if (n < 1) fail("--lengths: {} is not a positive token count", n);
  }
  o.run.tasks.clear();
  for (const std::string& name : o.tasks) o.run.tasks.push_back(parse_task_kind(name));
  o.run.stop_at_newline = !o.no_newline_stop;
  o.run.answer_cue = !o.no_answer_cue;
  o.run.n_threads = thread_count(o.n_threads);
  const Model model = Model::load(o.model_path, model_file_load(o.map_model));
  check_output_path(o.output);
  check_calibrate_options(o.run, model);  // its errors name the field; main adds the flag
  const CalibrationSet set = calibrate(model, o.run, o.output, isatty(STDERR_FILENO) != 0);
  print_summary(set);
  fmt::print(stderr, "wrote {} ({} samples)\n", o.output, set.samples.size());
}

}  // namespace

void register_calibrate(CLI::App& app) {
  auto o = std::make_shared<CalibrateCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "calibrate",
      "Build a calibration set: long-range prompts at each length, answered by the dense model");
  cmd->add_option("-m,--model", o->model_path, "GGUF model file")->required();
  cmd->add_option("--lengths", o->run.lengths,
                  "Profiling lengths in tokens (prompt + answer), comma-separated")
      ->required()
      ->delimiter(',');
  cmd->add_option("--source", o->run.source,
                  "builtin, a .jsonl file of {\"context\",\"question\"}, a text file, or a folder")
      ->capture_default_str();
  cmd->add_option("--tasks", o->tasks, "Built-in tasks in rotation: lines, passkey, kv")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-n,--samples", o->run.samples_per_length, "Samples per length")
      ->capture_default_str();
  add_seed_option(*cmd, o->run.seed, "Seed of the generated prompts")->capture_default_str();
  cmd->add_option("--max-answer", o->run.max_answer, "Answer tokens at most")
      ->capture_default_str();
  cmd->add_flag("--no-newline-stop", o->no_newline_stop,
                "Answers run to EOS or --max-answer instead of ending at a line break");
  cmd->add_flag("--no-answer-cue", o->no_answer_cue,
                "Built-in prompts end with the question (for chat models), not the answer's start");
  cmd->add_option("-t,--threads", o->n_threads, "Threads (default: all cores)");
  add_mmap_flag(*cmd, o->map_model);
  cmd->add_option("-o,--output", o->output, "Calibration set file to write (resumed if present)")
      ->required();
  cmd->callback([o] { run_calibrate(*o); });
}

}  // namespace moa::cli
