// Retrieval evaluation (METHOD.md s.6): LongEval lines, passkey and key-value cases, built at
// each length in the model's own tokens or read from JSONL case files (LongChat's published
// form or the shared planted cases), answered greedily by each attention method in a cache sized
// for the case, and scored exactly on the first number (lines, passkey) or the start of the
// answer (kv). Aggregation gives accuracy by length and needle-depth decile with counts, and
// the effective context length per method.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/forward.h"
#include "kv/attention_method.h"
#include "tasks/long_range_tasks.h"

namespace moa {

struct RetrievalCase {
  std::string id;
  std::string prompt;  // answer prefix included
  std::string expected;
  int64_t length = 0;   // the length bucket it is reported under (target tokens, or lines)
  double depth = -1.0;  // needle depth in [0, 1]; < 0 unknown (left out of the decile figures)
};

// Cases built with make_task_prompt: n per length, depths spread evenly (i / (n - 1)), each
// case's names and numbers drawn from a generator seeded by (seed, length, i).
std::vector<RetrievalCase> make_retrieval_cases(TaskKind kind, const Tokenizer& tokenizer,
                                                const std::vector<int64_t>& lengths, int64_t n,
                                                uint64_t seed, const std::string& answer_prefix);

// Cases from JSONL text: LongChat's {"prompt", "expected_number", "num_lines", ...} or the
// planted form {"prompt", "expected", "n_lines" | "target_len", "depth" | "target_line", ...}.
// Blank lines are skipped; a malformed line throws "<file>: line L: <field>: <problem>".
// A case's own "answer_prefix" wins over `answer_prefix`. Its length is num_lines / n_lines
// (`length_unit` becomes "lines"), else target_len, else its prompt's token count.
std::vector<RetrievalCase> parse_retrieval_cases(const std::string& text, const std::string& file,
                                                 const Tokenizer& tokenizer,
                                                 const std::string& answer_prefix,
                                                 std::string& length_unit);

// "dense", "streaming", "h2o", "moa:PLAN" or "binary:PLAN" (a DuoAttention-shaped plan file,
// run like moa); density and sinks apply to streaming and h2o. Throws naming the spec.
struct EvalMethod {
  std::string name;  // the spec as given, e.g. "moa:plan.json"
  std::string kind;  // dense | streaming | h2o | moa | binary
  AttentionMethod attention;
};
EvalMethod parse_eval_method(const std::string& spec, double density, int64_t sinks);

// Exact scoring: lines and passkey compare first_number(answer) with expected; kv checks that
// the answer starts with expected (leading spaces and quotes ignored).
bool answer_is_correct(TaskKind kind, const std::string& answer, const std::string& expected);

struct RetrievalConfig {
  int64_t answer_tokens = 8;  // greedy decode budget; generation stops at a newline
  int n_threads = 1;
  kernels::KvType kv_type = kernels::KvType::kF16;
};

struct CaseAnswer {
  std::string answer;
  int64_t n_prompt_tokens = 0;
  int64_t n_ctx = 0;  // N the method was sized for: prompt + answer budget
  bool correct = false;
};

// The prompt's tokens (BOS added); throws when prompt + answer budget exceeds the context.
std::vector<TokenId> case_tokens(const Model& model, const RetrievalCase& c, int64_t answer_tokens);

// Plans the method for this case's N, builds its cache and answers greedily.
CaseAnswer answer_case(const Model& model, const EvalMethod& method, TaskKind kind,
                       const RetrievalCase& c, const RetrievalConfig& config);

// One scored case of one method, as the results file stores it.
struct CaseRecord {
  std::string method;
  std::string id;
  int64_t length = 0;
  int64_t n_tokens = 0;
  double depth = -1.0;
  std::string expected;
  std::string answer;
  bool correct = false;
};

struct Accuracy {
  int64_t correct = 0;
  int64_t count = 0;
  double value() const { return count > 0 ? static_cast<double>(correct) / count : 0.0; }
};

struct MethodSummary {
  std::string method;
  std::map<int64_t, Accuracy> by_length;
  std::map<int64_t, std::map<int, Accuracy>> by_length_decile;  // decile 0..9 of depth
  std::map<int, Accuracy> by_decile;
  Accuracy overall;
  // The longest length with accuracy >= threshold (0 when none) and its ratio to the method's
  // average kept span there (1 for dense; 0 when there is no such length).
  int64_t effective_length = 0;
  double effective_ratio = 0.0;
};

int depth_decile(double depth);  // 0..9; depth 1.0 falls in decile 9

// Per method in `methods` order; `kv_density(method, length)` gives the method's mean kept span
// over the input length there (1 for dense), so effective_ratio = 1 / it.
std::vector<MethodSummary> summarize_retrieval(
    const std::vector<CaseRecord>& records, const std::vector<std::string>& methods,
    double threshold, const std::function<double(const std::string&, int64_t)>& kv_density);

}  // namespace moa
