// A resumable retrieval run (see retrieval_run.h).
#include "eval/retrieval_run.h"

#include <set>
#include <utility>

#include "util/error.h"
#include "util/json_fields.h"
#include "util/progress.h"

namespace moa {
namespace {

ModelIdentity model_identity(const Model& model) {
  return identity_of(model.config(), model.file().metadata_hash());
}

// Mean prompt tokens + answer budget of a method's cases at one length: the N its spans are
// judged at.
int64_t mean_n(const std::vector<CaseRecord>& records, const std::string& method, int64_t length,
               int64_t answer_tokens) {
  int64_t sum = 0, count = 0;
  for (const CaseRecord& r : records) {
    if (r.method == method && r.length == length) sum += r.n_tokens, ++count;
  }
  return count > 0 ? sum / count + answer_tokens : length;
}

std::vector<MethodSummary> summarize(const Model& model, const RetrievalSettings& settings,
                                     const std::vector<EvalMethod>& methods,
                                     const std::vector<CaseRecord>& records) {
  std::vector<std::string> names;
  for (const EvalMethod& m : methods) names.push_back(m.name);
  auto density = [&](const std::string& name, int64_t length) {
    for (const EvalMethod& m : methods) {
      if (m.name != name) continue;
      const int64_t n = mean_n(records, name, length, settings.answer_tokens);
      return method_kv_density(m.attention, method_plan(m.attention, model_identity(model), n), n);
    }
    return 1.0;
  };
  return summarize_retrieval(records, names, settings.threshold, density);
}

}  // namespace

void describe_methods(const Model& model, const std::vector<EvalMethod>& methods, int64_t n_check,
                      RetrievalSettings& settings) {
  settings.methods.clear();
  std::set<std::string> seen;
  for (const EvalMethod& m : methods) {
    if (!seen.insert(m.name).second) fail("method '{}' is listed twice", m.name);
    check_attention_method(m.attention, n_check);
    method_plan(m.attention, model_identity(model), n_check);
    MethodInfo info{m.name, m.kind, m.attention.density, m.attention.sinks, m.attention.plan_path,
                    ""};
    if (!info.plan.empty()) info.plan_hash = file_hash(info.plan);
    if (m.kind != "streaming") info.sinks = 0;
    settings.methods.push_back(info);
  }
}

RetrievalRun run_retrieval(const Model& model, const RetrievalSettings& settings,
                           const std::vector<EvalMethod>& methods,
                           const std::vector<RetrievalCase>& cases, const RetrievalConfig& config,
                           const std::string& output) {
  for (const RetrievalCase& c : cases) case_tokens(model, c, config.answer_tokens);
  const TaskKind kind = parse_task_kind(settings.task);
  RetrievalRun run;
  if (!output.empty()) run.records = read_resumable_cases(output, settings);
  std::set<std::pair<std::string, std::string>> done;
  for (const CaseRecord& r : run.records) done.insert({r.method, r.id});
  run.resumed = static_cast<int64_t>(run.records.size());
  const int64_t total = static_cast<int64_t>(methods.size() * cases.size());
  Progress progress("cases", total, run.resumed);
  for (const EvalMethod& m : methods) {
    for (const RetrievalCase& c : cases) {
      if (done.count({m.name, c.id})) continue;
      const CaseAnswer a = answer_case(model, m, kind, c, config);
      run.records.push_back(
          {m.name, c.id, c.length, a.n_prompt_tokens, c.depth, c.expected, a.answer, a.correct});
      done.insert({m.name, c.id});
      if (!output.empty()) {
        json_fields::write_json_file(
            output,
            retrieval_results_json(settings, run.records,
                                   summarize(model, settings, methods, run.records)),
            1);
      }
      progress.step(a.n_prompt_tokens);
    }
  }
  run.summary = summarize(model, settings, methods, run.records);
  if (!output.empty()) {
    json_fields::write_json_file(output, retrieval_results_json(settings, run.records, run.summary),
                                 1);
  }
  return run;
}

}  // namespace moa
