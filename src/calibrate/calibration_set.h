// The calibration set: long-context prompts with the dense model's own greedy answers, per
// profiling length (METHOD.md s.2). Profiling takes the cross-entropy of the answer tokens given
// the prompt, so the answer is always the model's (model-aligned supervision), never a human
// reference. The file (docs/calibration.md) is versioned JSON naming the model it was made for,
// the source, the seed and the lengths; it is rewritten atomically after every sample, so a
// killed run resumes from its last finished sample.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "plan/plan.h"
#include "tokenizer/tokenizer.h"

namespace moa {

struct CalibrationSample {
  int64_t length = 0;    // the profiling length this sample was made for (prompt + answer budget)
  int64_t index = 0;     // 0 .. samples_per_length-1 within that length
  std::string task;      // "lines", "passkey", "kv", "jsonl", "text"
  double depth = 0.0;    // where the queried item sits in the context (built-in tasks)
  std::string expected;  // the task's true answer, for reports only ("" for user sources)
  std::vector<TokenId> prompt;  // with BOS
  std::vector<TokenId> answer;  // the dense model's greedy answer
  std::string answer_text;
};

struct CalibrationSet {
  static constexpr int kFormatVersion = 1;
  ModelIdentity model;  // hash = GgufFile::metadata_hash(): covers the tokenizer too
  int64_t n_vocab = 0;
  std::string source = "builtin";  // "builtin" or the JSONL / text path given
  std::vector<std::string> tasks;  // built-in generators used, in rotation
  uint64_t seed = 0;
  std::vector<int64_t> lengths;
  int64_t samples_per_length = 0;
  int64_t max_answer = 0;
  bool stop_at_newline = true;
  bool answer_cue = true;
  std::vector<CalibrationSample> samples;  // finished samples, in the order they were made

  bool has(int64_t length, int64_t index) const;
  // Everything but the samples equals `other`'s (a resumed run must be the same run).
  bool same_settings(const CalibrationSet& other) const;
};

std::string calibration_to_json(const CalibrationSet& set);
// Every field is checked; errors name the file and the field. Token ids must lie in the vocab.
CalibrationSet calibration_from_json(const std::string& text, const std::string& file);
CalibrationSet read_calibration(const std::string& path);
void write_calibration(const CalibrationSet& set, const std::string& path);

// Throws naming the file when the set was made for another model or tokenizer.
void check_calibration_matches(const CalibrationSet& set, const ModelIdentity& model,
                               int64_t n_vocab, const std::string& file);
// Throws naming the file and length when the set is unfinished: a length with fewer samples than
// samples_per_length (a calibrate run killed before the end). The commands that read a set call
// it; the profiler itself takes partial sets (its tests resume from them).
void check_calibration_complete(const CalibrationSet& set, const std::string& file);

}  // namespace moa
