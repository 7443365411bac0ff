// Built-in long-range tasks whose answer depends on far-away context (METHOD.md s.2, s.6):
// LongEval-style line retrieval, passkey retrieval and key-value retrieval. Shared by
// calibration (the dense model answers them; its answer supervises profiling) and evaluation
// (the first number / value of an answer is scored against `expected`). Every prompt is built
// to a length measured in *the model's own tokens* (with BOS), never characters or another
// model's tokenizer, and places the queried item at a chosen depth of the context.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace moa {

enum class TaskKind { kLines, kPasskey, kKeyValue };

// "lines", "passkey", "kv"; parse_task_kind throws naming the accepted names.
std::string_view task_kind_name(TaskKind kind);
TaskKind parse_task_kind(std::string_view name);

struct TaskOptions {
  int64_t target_tokens = 1024;  // prompt length in model tokens, BOS included (an upper bound)
  double depth = -1.0;           // where the queried item sits in [0, 1]; < 0: uniform at random
  // Base models with no chat template get the start of the answer appended to the prompt
  // (e.g. "Answer: line X: REGISTER_CONTENT is <"), so that continuing it is answering.
  bool answer_cue = true;
};

struct TaskPrompt {
  TaskKind kind = TaskKind::kLines;
  std::string prompt;       // context, question and (optionally) the answer cue
  std::string expected;     // the task's true answer (scoring only; never a training target)
  int64_t n_tokens = 0;     // tokens of `prompt` with BOS, <= target_tokens
  int64_t n_items = 0;      // lines / filler sentences / key-value pairs in the context
  int64_t needle_item = 0;  // index of the queried item among them
  double depth = 0.0;       // needle_item / (n_items - 1), 0 for a single item
};

// Builds one prompt of at most target_tokens tokens (and within one item of it), drawing names,
// numbers and (when options.depth < 0) the depth from `rng`. Throws when target_tokens is too
// small to hold the task's frame and two items.
TaskPrompt make_task_prompt(TaskKind kind, const Tokenizer& tokenizer, const TaskOptions& options,
                            std::mt19937_64& rng);

// The first run of ASCII digits in `text` ("" when none): how line and passkey answers are
// scored (LongEval compares the first number of the answer exactly).
std::string first_number(std::string_view text);

}  // namespace moa
