// A whole retrieval run: every method answers every case, each result is appended to the results
// file (rewritten atomically after every case), and a rerun with the same settings skips the
// cases the file already holds. Methods are checked against the model before any case runs, so
// a plan for another model or an impossible length fails at once.
#pragma once

#include <string>
#include <vector>

#include "eval/eval_results.h"
#include "eval/retrieval.h"

namespace moa {

// Fills settings.methods from `methods` (plan paths and hashes) after planning each for the
// model at N = n_check (throws for a plan made for another model or invalid at that length).
void describe_methods(const Model& model, const std::vector<EvalMethod>& methods, int64_t n_check,
                      RetrievalSettings& settings);

struct RetrievalRun {
  std::vector<CaseRecord> records;  // every case of every method, resumed ones included
  std::vector<MethodSummary> summary;
  int64_t resumed = 0;  // cases read back from an earlier run
};

// Runs (or resumes) the evaluation; `output` may be empty (nothing written).
RetrievalRun run_retrieval(const Model& model, const RetrievalSettings& settings,
                           const std::vector<EvalMethod>& methods,
                           const std::vector<RetrievalCase>& cases, const RetrievalConfig& config,
                           const std::string& output);

}  // namespace moa
