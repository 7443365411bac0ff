// Retrieval cases, methods, answering and scoring (see retrieval.h).
#include "eval/retrieval.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/generate.h"
#include "kv/static_kv_cache.h"
#include "util/error.h"
#include "util/json_fields.h"

namespace moa {
namespace {

using nlohmann::json;
namespace jf = json_fields;

// One seed per (seed, length, case), so a case never depends on which others were built.
uint64_t case_seed(uint64_t seed, int64_t length, int64_t i) {
  uint64_t h = seed ^ 0x9e3779b97f4a7c15ULL;
  for (uint64_t v : {static_cast<uint64_t>(length), static_cast<uint64_t>(i)}) {
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  }
  return h;
}

// A numeric field given as a number or a string of digits (LongChat writes expected_number as
// an int).
std::string number_text(const json& v, const std::string& file, const std::string& path,
                        const std::string& key) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  fail("{}: {}{}: expected a string or an integer, got {}", file, path, key, v.type_name());
}

double case_depth(const json& obj, const std::string& file, const std::string& path) {
  if (obj.contains("depth")) {
    const double d = jf::number_field(obj, "depth", file, path);
    if (!(d >= 0.0 && d <= 1.0)) fail("{}: {}depth: {} is not in [0, 1]", file, path, d);
    return d;
  }
  for (const char* lines : {"n_lines", "num_lines"}) {
    if (obj.contains("target_line") && obj.contains(lines)) {
      const int64_t n = jf::integer_field(obj, lines, file, path, 1);
      const int64_t t = jf::integer_field(obj, "target_line", file, path, 0, n - 1);
      return n > 1 ? static_cast<double>(t) / static_cast<double>(n - 1) : 0.0;
    }
  }
  if (obj.contains("needle_token_pos") && obj.contains("n_prompt_tokens")) {
    const int64_t n = jf::integer_field(obj, "n_prompt_tokens", file, path, 1);
    const int64_t p = jf::integer_field(obj, "needle_token_pos", file, path, 0, n);
    return static_cast<double>(p) / static_cast<double>(n);
  }
  return -1.0;
}

}  // namespace

std::vector<RetrievalCase> make_retrieval_cases(TaskKind kind, const Tokenizer& tokenizer,
                                                const std::vector<int64_t>& lengths, int64_t n,
                                                uint64_t seed, const std::string& answer_prefix) {
  if (n < 1) fail("case count {}: expected at least 1", n);
  std::vector<RetrievalCase> cases;
  for (int64_t length : lengths) {
    for (int64_t i = 0; i < n; ++i) {
      TaskOptions options;
      options.target_tokens = length;
      options.depth = n > 1 ? static_cast<double>(i) / static_cast<double>(n - 1) : 0.5;
      std::mt19937_64 rng(case_seed(seed, length, i));
      const TaskPrompt p = make_task_prompt(kind, tokenizer, options, rng);
      cases.push_back({fmt::format("{}-{}-{}", task_kind_name(kind), length, i),
                       p.prompt + answer_prefix, p.expected, length, p.depth});
    }
  }
  return cases;
}

std::vector<RetrievalCase> parse_retrieval_cases(const std::string& text, const std::string& file,
                                                 const Tokenizer& tokenizer,
                                                 const std::string& answer_prefix,
                                                 std::string& length_unit) {
  std::vector<RetrievalCase> cases;
  std::set<std::string> ids;  // results are keyed by id, so ids must be unique
  size_t begin = 0;
  length_unit = "tokens";
  for (int64_t line_no = 1; begin < text.size(); ++line_no) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}: line {}", file, line_no);
    const json obj = jf::parse(line, where, "a JSON object per line");
    if (!obj.is_object()) fail("{}: expected a JSON object, got {}", where, obj.type_name());
    const std::string path = fmt::format("line {}: ", line_no);
    RetrievalCase c;
    c.prompt = jf::string_field(obj, "prompt", file, path);
    if (obj.contains("expected")) {
      c.expected = number_text(obj["expected"], file, path, "expected");
    } else if (obj.contains("expected_number")) {
      c.expected = number_text(obj["expected_number"], file, path, "expected_number");
    } else {
      fail("{}: {}expected: missing (give \"expected\" or \"expected_number\")", file, path);
    }
    if (c.expected.empty()) fail("{}: {}expected: is empty", file, path);
    c.id = obj.contains("id") ? jf::string_field(obj, "id", file, path)
                              : fmt::format("case-{}", line_no);
    if (!ids.insert(c.id).second)
      fail("{}: {}id: '{}' repeats an earlier case's id", file, path, c.id);
    c.prompt += obj.contains("answer_prefix") ? jf::string_field(obj, "answer_prefix", file, path)
                                              : answer_prefix;
    c.depth = case_depth(obj, file, path);
    if (obj.contains("n_lines") || obj.contains("num_lines")) {
      c.length =
          jf::integer_field(obj, obj.contains("n_lines") ? "n_lines" : "num_lines", file, path, 1);
      length_unit = "lines";
    } else if (obj.contains("target_len")) {
      c.length = jf::integer_field(obj, "target_len", file, path, 1);
    } else {
      c.length = static_cast<int64_t>(tokenizer.encode(c.prompt, true, false).size());
    }
    cases.push_back(std::move(c));
  }
  if (cases.empty()) fail("{}: no cases (expected one JSON object per line)", file);
  return cases;
}

EvalMethod parse_eval_method(const std::string& spec, double density, int64_t sinks) {
  EvalMethod m;
  m.name = spec;
  m.attention.density = density;
  m.attention.sinks = sinks;
  const size_t colon = spec.find(':');
  m.kind = spec.substr(0, colon);
  const std::string plan = colon == std::string::npos ? "" : spec.substr(colon + 1);
  const bool plan_method = m.kind == "moa" || m.kind == "binary";
  if (plan_method && plan.empty()) {
    fail("method '{}': {} needs a plan file ({}:PLAN.json)", spec, m.kind, m.kind);
  }
  if (!plan_method && (m.kind != "dense" && m.kind != "streaming" && m.kind != "h2o")) {
    fail("method '{}' is not known (expected dense, streaming, h2o, moa:PLAN or binary:PLAN)",
         spec);
  }
  if (!plan_method && colon != std::string::npos) {
    fail("method '{}': {} takes no plan file", spec, m.kind);
  }
  m.attention.kind = plan_method ? AttentionKind::kMoa : parse_attention_kind(m.kind);
  m.attention.plan_path = plan;
  if (m.attention.kind == AttentionKind::kDense) m.attention.density = 1.0;
  return m;
}

bool answer_is_correct(TaskKind kind, const std::string& answer, const std::string& expected) {
  if (kind != TaskKind::kKeyValue) return first_number(answer) == expected;
  const size_t start = answer.find_first_not_of(" \"'");
  return start != std::string::npos && answer.compare(start, expected.size(), expected) == 0;
}

std::vector<TokenId> case_tokens(const Model& model, const RetrievalCase& c,
                                 int64_t answer_tokens) {
  std::vector<TokenId> ids = model.tokenizer().encode(c.prompt, true, false);
  const int64_t n = static_cast<int64_t>(ids.size()) + answer_tokens;
  if (n > model.config().n_ctx_train) {
    fail("case {}: {} prompt tokens + {} answer tokens exceed the model's context of {} tokens",
         c.id, ids.size(), answer_tokens, model.config().n_ctx_train);
  }
  return ids;
}

CaseAnswer answer_case(const Model& model, const EvalMethod& method, TaskKind kind,
                       const RetrievalCase& c, const RetrievalConfig& config) {
  const std::vector<TokenId> ids = case_tokens(model, c, config.answer_tokens);
  CaseAnswer a;
  a.n_prompt_tokens = static_cast<int64_t>(ids.size());
  a.n_ctx = a.n_prompt_tokens + config.answer_tokens;
  check_attention_method(method.attention, a.n_ctx);
  const std::optional<SparsePlan> plan = method_plan(
      method.attention, identity_of(model.config(), model.file().metadata_hash()), a.n_ctx);
  const auto cache = make_attention_cache(kv_shape(model.config(), a.n_ctx, 1, config.kv_type),
                                          method.attention, plan, kDefaultRingChunk);
  GenerateRequest request;
  request.prompt = ids;
  request.max_new_tokens = config.answer_tokens;
  request.sampling.temperature = 0.0f;
  request.stop_at_newline = true;
  const GenerateResult r = generate(model, *cache, 0, request, nullptr, config.n_threads);
  a.answer = r.text;
  a.correct = answer_is_correct(kind, a.answer, c.expected);
  return a;
}

int depth_decile(double depth) { return std::clamp(static_cast<int>(depth * 10.0), 0, 9); }

std::vector<MethodSummary> summarize_retrieval(
    const std::vector<CaseRecord>& records, const std::vector<std::string>& methods,
    double threshold, const std::function<double(const std::string&, int64_t)>& kv_density) {
  std::vector<MethodSummary> out;
  for (const std::string& name : methods) {
    MethodSummary s;
    s.method = name;
    for (const CaseRecord& r : records) {
      if (r.method != name) continue;
      auto add = [&](Accuracy& a) { a.correct += r.correct ? 1 : 0, ++a.count; };
      add(s.by_length[r.length]);
      add(s.overall);
      if (r.depth >= 0.0) {
        add(s.by_decile[depth_decile(r.depth)]);
        add(s.by_length_decile[r.length][depth_decile(r.depth)]);
      }
    }
    for (const auto& [length, acc] : s.by_length) {
      if (acc.value() >= threshold) s.effective_length = length;
    }
    if (s.effective_length > 0) {
      const double density = kv_density(name, s.effective_length);
      s.effective_ratio = density > 0.0 ? 1.0 / density : 0.0;
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace moa
