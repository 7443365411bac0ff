// Results files of `moa eval` (retrieval, perplexity, speed): one JSON object that records what
// reproduces the run (moa version, model and plan hashes, seed, lengths, methods) and every
// scored case. Retrieval results are rewritten atomically after each case, and a rerun with the
// same settings resumes: cases already in the file are skipped.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/retrieval.h"
#include "eval/throughput.h"

namespace moa {

inline constexpr const char* kMoaVersion = "0.1.0";

// FNV-1a 64-bit hash (16 hex digits) of a file's bytes; throws naming the file when unreadable.
std::string file_hash(const std::string& path);

struct MethodInfo {
  std::string name;  // the spec, e.g. "moa:plan.json"
  std::string kind;  // dense | streaming | h2o | moa | binary
  double density = 1.0;
  int64_t sinks = 0;
  std::string plan;       // plan file path ("" without one)
  std::string plan_hash;  // file_hash of it
};

// Everything a retrieval run depends on; two runs with equal settings produce the same cases.
struct RetrievalSettings {
  std::string task = "lines";
  std::string model;  // path as given
  std::string model_hash;
  std::string cases_file;  // "" when cases are generated
  std::string cases_hash;
  std::string length_unit = "tokens";
  std::string answer_prefix;
  uint64_t seed = 1;
  std::vector<int64_t> lengths;
  int64_t n = 0;
  int64_t answer_tokens = 8;
  double threshold = 0.9;
  std::vector<MethodInfo> methods;
};

nlohmann::json settings_json(const RetrievalSettings& s);
nlohmann::json case_json(const CaseRecord& r);
CaseRecord case_from_json(const nlohmann::json& j, const std::string& file, size_t index);

// The whole results object: settings, cases and the summary computed from them.
nlohmann::json retrieval_results_json(const RetrievalSettings& s,
                                      const std::vector<CaseRecord>& records,
                                      const std::vector<MethodSummary>& summary);

// Reads the cases of an earlier run from `path` to resume it; none when the file does not
// exist. Throws when it exists but records other settings (naming the first that differs) or is
// not a retrieval results file.
std::vector<CaseRecord> read_resumable_cases(const std::string& path,
                                             const RetrievalSettings& settings);

// One JSON object per throughput row (the "results" array of `moa bench --json` and of
// `moa eval speed` files).
nlohmann::json throughput_rows_json(const std::vector<ThroughputResult>& results);

// Reads any results file and checks its "kind" (retrieval, perplexity or speed).
nlohmann::json read_results_file(const std::string& path);

}  // namespace moa
