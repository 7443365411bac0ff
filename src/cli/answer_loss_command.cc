// `moa answer-loss`: the validation pick's measure for any plans — each plan's mean answer
// cross-entropy (nats per answer token) on a calibration set's samples of one length, run with
// the sparse engine, next to dense attention. This is how the optimizer's plans are compared
// with the StreamingLLM and full-or-window baselines on held-back answers (scripts/quality_bar.sh).
#include <fmt/format.h>

#include <memory>

#include "cli/commands.h"
#include "optimize/validation_loss.h"
#include "plan/plan_io.h"
#include "util/error.h"

namespace moa::cli {
namespace {

struct AnswerLossOptions {
  std::string model_path;
  std::string calib_path;
  std::vector<std::string> plans;
  int64_t length = 0;
  int n_threads = 0;
};

void run_answer_loss(AnswerLossOptions& o) {
  if (o.calib_path.empty()) fail("--calib: give the calibration set whose answers are scored");
  const int threads = thread_count(o.n_threads);
  const CalibrationSet set = read_calibration(o.calib_path);
  check_calibration_complete(set, o.calib_path);
  if (o.length == 0) {
    if (set.lengths.empty()) fail("{}: the calibration set has no lengths", o.calib_path);
    o.length = set.lengths.back();
  }
  if (o.length < 1) fail("--length: {} is not a positive token count", o.length);
  const Model model = Model::load(o.model_path);
  const ModelIdentity identity = identity_of(model.config(), model.file().metadata_hash());
  check_calibration_matches(set, identity, model.config().n_vocab, o.calib_path);
  const std::vector<const CalibrationSample*> samples = samples_at(set, o.length, o.calib_path);
  std::vector<std::pair<std::string, SparsePlan>> plans = {{"dense", dense_plan(identity)}};
  for (const std::string& path : o.plans) {
    SparsePlan plan = read_plan(path);
    check_plan_matches(plan, identity, path);
    plans.emplace_back(path, std::move(plan));
  }
  fmt::print("{} samples of length {} from {}\n", samples.size(), o.length, o.calib_path);
  fmt::print("| plan | method | KV density@{} | answer loss@{} (nats/token) |\n|---|---|---|---|\n",
             o.length, o.length);
  for (const auto& [name, plan] : plans) {
    const double loss = plan_answer_loss(model, plan, samples, o.length, threads);
    fmt::print("| {} | {} | {:.4f} | {:.5f} |\n", name, plan.method, kv_density(plan, o.length),
               loss);
  }
}

}  // namespace

void register_answer_loss(CLI::App& app) {
  auto o = std::make_shared<AnswerLossOptions>();
  CLI::App* cmd = app.add_subcommand(
      "answer-loss", "Answer cross-entropy of plans on calibration samples (with dense beside)");
  cmd->add_option("-m,--model", o->model_path, "GGUF model file")->required();
  cmd->add_option("--calib", o->calib_path, "Calibration set (moa calibrate)");
  cmd->add_option("--length", o->length, "Calibration length to score (default: the longest)");
  cmd->add_option("plans", o->plans, "Plan files");
  cmd->add_option("-t,--threads", o->n_threads, "Threads (default: all cores)");
  cmd->callback([o] { run_answer_loss(*o); });
}

}  // namespace moa::cli
