// Results files of `moa eval` (see eval_results.h).
#include "eval/eval_results.h"

#include <filesystem>

#include "kv/kv_cache.h"
#include "util/error.h"
#include "util/json_fields.h"
#include "util/mapped_file.h"

namespace moa {
namespace {

using nlohmann::json;
namespace jf = json_fields;

json accuracy_json(const Accuracy& a) {
  return {{"accuracy", a.value()}, {"correct", a.correct}, {"count", a.count}};
}

json summary_json(const MethodSummary& s) {
  json j{{"method", s.method},
         {"overall", accuracy_json(s.overall)},
         {"effective_length", s.effective_length},
         {"effective_ratio", s.effective_ratio},
         {"by_length", json::array()},
         {"by_decile", json::array()},
         {"by_length_decile", json::array()}};
  for (const auto& [length, a] : s.by_length) {
    json row = accuracy_json(a);
    row["length"] = length;
    j["by_length"].push_back(row);
  }
  for (const auto& [decile, a] : s.by_decile) {
    json row = accuracy_json(a);
    row["decile"] = decile;
    j["by_decile"].push_back(row);
  }
  for (const auto& [length, deciles] : s.by_length_decile) {
    for (const auto& [decile, a] : deciles) {
      json row = accuracy_json(a);
      row["length"] = length;
      row["decile"] = decile;
      j["by_length_decile"].push_back(row);
    }
  }
  return j;
}

}  // namespace

std::string file_hash(const std::string& path) {
  const std::string bytes = read_regular_file(path);
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ULL;
  return fmt::format("{:016x}", h);
}

json settings_json(const RetrievalSettings& s) {
  json methods = json::array();
  for (const MethodInfo& m : s.methods) {
    methods.push_back({{"name", m.name},
                       {"kind", m.kind},
                       {"density", m.density},
                       {"sinks", m.sinks},
                       {"plan", m.plan},
                       {"plan_hash", m.plan_hash}});
  }
  return {{"task", s.task},
          {"model", s.model},
          {"model_hash", s.model_hash},
          {"cases_file", s.cases_file},
          {"cases_hash", s.cases_hash},
          {"length_unit", s.length_unit},
          {"answer_prefix", s.answer_prefix},
          {"seed", s.seed},
          {"lengths", s.lengths},
          {"n", s.n},
          {"answer_tokens", s.answer_tokens},
          {"threshold", s.threshold},
          {"methods", methods}};
}

json case_json(const CaseRecord& r) {
  return {{"method", r.method},     {"id", r.id},          {"length", r.length},
          {"n_tokens", r.n_tokens}, {"depth", r.depth},    {"expected", r.expected},
          {"answer", r.answer},     {"correct", r.correct}};
}

CaseRecord case_from_json(const json& j, const std::string& file, size_t index) {
  const std::string path = fmt::format("cases[{}].", index);
  CaseRecord r;
  r.method = jf::string_field(j, "method", file, path);
  r.id = jf::string_field(j, "id", file, path);
  r.length = jf::integer_field(j, "length", file, path, 0);
  r.n_tokens = jf::integer_field(j, "n_tokens", file, path, 0);
  r.depth = jf::number_field(j, "depth", file, path);
  r.expected = jf::string_field(j, "expected", file, path);
  r.answer = jf::string_field(j, "answer", file, path);
  r.correct = jf::bool_field(j, "correct", file, path);
  return r;
}

json retrieval_results_json(const RetrievalSettings& s, const std::vector<CaseRecord>& records,
                            const std::vector<MethodSummary>& summary) {
  json j{{"kind", "retrieval"},
         {"moa_version", kMoaVersion},
         {"settings", settings_json(s)},
         {"cases", json::array()},
         {"summary", json::array()}};
  for (const CaseRecord& r : records) j["cases"].push_back(case_json(r));
  for (const MethodSummary& m : summary) j["summary"].push_back(summary_json(m));
  return j;
}

json throughput_rows_json(const std::vector<ThroughputResult>& results) {
  json rows = json::array();
  for (const ThroughputResult& r : results) {
    rows.push_back({{"method", r.method},
                    {"test", r.test},
                    {"depth", r.depth},
                    {"batch", r.batch},
                    {"n_ctx", r.n_ctx},
                    {"tokens", r.tokens},
                    {"seconds", r.seconds},
                    {"median_seconds", r.median_seconds},
                    {"tokens_per_second", r.tokens_per_second},
                    {"bytes_per_step", r.bytes_per_step},
                    {"kv_bytes_read_per_step", r.kv_bytes_read_per_step},
                    {"gigabytes_per_second", r.gigabytes_per_second},
                    {"gflops", r.gflops},
                    {"bandwidth_gbs", r.bandwidth_gbs},
                    {"sgemm_gflops", r.sgemm_gflops},
                    {"fraction_of_bound", r.fraction_of_bound},
                    {"int8_peak_gops", r.int8_peak_gops},
                    {"fraction_of_int8_peak", r.fraction_of_int8_peak},
                    {"kv_type", kv_type_name(r.kv_type)},
                    {"kv_cache_bytes", r.kv_cache_bytes},
                    {"kv_density", r.kv_density}});
  }
  return rows;
}

json read_results_file(const std::string& path) {
  const json j = jf::parse(read_regular_file(path), path, "a moa eval results file");
  if (!j.is_object()) fail("{}: expected a JSON object (a moa eval results file)", path);
  const std::string kind = jf::string_field(j, "kind", path, "");
  if (kind != "retrieval" && kind != "perplexity" && kind != "speed") {
    fail("{}: kind: '{}' is not a results kind (expected retrieval, perplexity or speed)", path,
         kind);
  }
  return j;
}

std::vector<CaseRecord> read_resumable_cases(const std::string& path,
                                             const RetrievalSettings& settings) {
  if (!std::filesystem::exists(path)) return {};
  const json j = read_results_file(path);
  if (j["kind"] != "retrieval") fail("{}: kind: expected retrieval results to resume", path);
  const json& old = jf::member(j, "settings", path, "");
  const json now = settings_json(settings);
  for (const auto& [key, value] : now.items()) {
    if (!old.contains(key) || old[key] != value) {
      fail(
          "{}: settings.{}: the file holds another run ({} here, {} now); remove it or write to "
          "another file",
          path, key, old.contains(key) ? old[key].dump() : "missing", value.dump());
    }
  }
  std::vector<CaseRecord> records;
  const json& cases = jf::array_field(j, "cases", path, "");
  for (size_t i = 0; i < cases.size(); ++i) records.push_back(case_from_json(cases[i], path, i));
  return records;
}

}  // namespace moa
