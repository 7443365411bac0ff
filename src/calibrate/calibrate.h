// `moa calibrate` as a library: builds the calibration set (METHOD.md s.2) for a model. For each
// profiling length and sample, a long-context prompt is made to the length in the model's own
// tokens (built-in long-range tasks, or the user's JSONL / text files, truncated in the middle or
// filled with other records), the dense model answers it greedily, and prompt + answer tokens
// are stored. The set file is rewritten atomically after every sample; rerunning with the same
// settings continues after the last finished sample.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "calibrate/calibration_set.h"
#include "engine/forward.h"
#include "tasks/long_range_tasks.h"

namespace moa {

struct CalibrateOptions {
  std::vector<int64_t> lengths;    // prompt + answer budget of each sample, in tokens
  std::string source = "builtin";  // "builtin", a .jsonl file {"context","question"}, a text file
                                   // or a folder of them
  std::vector<TaskKind> tasks = {TaskKind::kLines, TaskKind::kPasskey, TaskKind::kKeyValue};
  int64_t samples_per_length = 8;
  uint64_t seed = 1;
  int64_t max_answer = 32;      // answer tokens at most (the prompt gets length - max_answer)
  bool stop_at_newline = true;  // an answer ends at its first line break (and at EOS always)
  bool answer_cue = true;       // built-in tasks end with the start of the answer (base models)
  int n_threads = 1;
};

// Checks the options against the model (lengths within its context and long enough for an
// answer, a positive sample count, a readable source) before any work starts.
void check_calibrate_options(const CalibrateOptions& options, const Model& model);

// Makes (or resumes) the set at `output_path`; `show_progress` draws a progress line.
CalibrationSet calibrate(const Model& model, const CalibrateOptions& options,
                         const std::string& output_path, bool show_progress);

}  // namespace moa
