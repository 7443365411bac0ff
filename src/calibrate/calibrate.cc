// Calibration run (see calibrate.h). Each sample draws from its own generator seeded by (seed,
// length, index), so a resumed run makes exactly the samples an uninterrupted one would.
#include "calibrate/calibrate.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <random>

#include "engine/generate.h"
#include "kv/kv_cache.h"
#include "util/error.h"
#include "util/input_error.h"
#include "util/json_fields.h"
#include "util/mapped_file.h"
#include "util/progress.h"

namespace moa {
namespace {

constexpr int64_t kMinContextTokens = 16;

struct UserRecord {
  std::string context;
  std::string question;
};

std::vector<UserRecord> read_jsonl_records(const std::string& path) {
  const std::string text = read_regular_file(path);
  std::vector<UserRecord> records;
  size_t line_no = 0;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    const auto j =
        json_fields::parse(line, where, "one JSON object {\"context\", \"question\"} per line");
    records.push_back({json_fields::string_field(j, "context", where, ""),
                       json_fields::string_field(j, "question", where, "")});
  }
  if (records.empty())
    fail("{}: no records (expected JSON lines {{\"context\", \"question\"}})", path);
  return records;
}

std::vector<UserRecord> read_text_records(const std::string& path) {
  std::vector<std::string> files;
  if (std::filesystem::is_directory(path)) {
    for (const auto& entry : std::filesystem::directory_iterator(path)) {
      if (entry.is_regular_file()) files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(path);
  }
  std::vector<UserRecord> records;
  for (const std::string& file : files) {
    if (file.ends_with(".jsonl")) {
      for (UserRecord& r : read_jsonl_records(file)) records.push_back(std::move(r));
    } else {
      records.push_back({read_regular_file(file), ""});
    }
  }
  if (records.empty()) fail("{}: the folder has no files to calibrate on", path);
  return records;
}

// Context tokens for a budget: middle-truncated (both ends kept, as LongBench truncates) or
// filled in front with the following records' text.
std::vector<TokenId> fitted_context(const Tokenizer& tokenizer,
                                    const std::vector<UserRecord>& records, size_t r,
                                    size_t budget) {
  std::vector<TokenId> context = tokenizer.encode(records[r].context, false, false);
  if (context.size() > budget) {
    const size_t head = budget / 2;
    context.erase(context.begin() + static_cast<std::ptrdiff_t>(head),
                  context.end() - static_cast<std::ptrdiff_t>(budget - head));
    return context;
  }
  std::vector<TokenId> filler;
  for (size_t k = 1; filler.size() + context.size() < budget && k <= 64 * records.size(); ++k) {
    const std::vector<TokenId> more =
        tokenizer.encode(records[(r + k) % records.size()].context + "\n\n", false, false);
    filler.insert(filler.begin(), more.begin(), more.end());
  }
  const size_t fill = std::min(filler.size(), budget - context.size());
  context.insert(context.begin(), filler.end() - static_cast<std::ptrdiff_t>(fill), filler.end());
  return context;
}

// BOS + fitted context + question, tokenized as one text (pieces tokenized apart would join
// differently, e.g. SentencePiece's space prefix), at most `target` tokens.
std::vector<TokenId> user_prompt(const Tokenizer& tokenizer, const std::vector<UserRecord>& records,
                                 size_t r, int64_t target) {
  const std::string question =
      records[r].question.empty() ? std::string() : "\n\n" + records[r].question;
  const auto question_tokens =
      static_cast<int64_t>(tokenizer.encode(question, false, false).size());
  int64_t budget = target - 1 - question_tokens;
  for (int attempt = 0; attempt < 8 && budget >= kMinContextTokens; ++attempt) {
    const std::string context =
        tokenizer.decode(fitted_context(tokenizer, records, r, static_cast<size_t>(budget)));
    std::vector<TokenId> prompt = tokenizer.encode(context + question, true, false);
    const auto overshoot = static_cast<int64_t>(prompt.size()) - target;
    if (overshoot <= 0) return prompt;
    budget -= overshoot;
  }
  fail("record {}: cannot fit its context and question into {} tokens", r + 1, target);
}

CalibrationSet empty_set(const Model& model, const CalibrateOptions& o) {
  CalibrationSet set;
  set.model = identity_of(model.config(), model.file().metadata_hash());
  set.n_vocab = model.config().n_vocab;
  set.source = o.source;
  if (o.source == "builtin") {
    for (TaskKind kind : o.tasks) set.tasks.emplace_back(task_kind_name(kind));
  }
  set.seed = o.seed;
  set.lengths = o.lengths;
  set.samples_per_length = o.samples_per_length;
  set.max_answer = o.max_answer;
  set.stop_at_newline = o.stop_at_newline;
  set.answer_cue = o.answer_cue;
  return set;
}

}  // namespace

void check_calibrate_options(const CalibrateOptions& o, const Model& model) {
  if (o.lengths.empty()) fail_input("lengths", "none given: expected at least one length");
  if (!std::is_sorted(o.lengths.begin(), o.lengths.end(), std::less_equal<>())) {
    fail_input("lengths", "expected increasing lengths, each once");  // as the file's check
  }
  if (o.samples_per_length <= 0) {
    fail_input("samples", "{} samples per length: expected a positive number",
               o.samples_per_length);
  }
  if (o.max_answer <= 0) {
    fail_input("max answer", "answer budget {}: expected > 0 tokens", o.max_answer);
  }
  if (o.source == "builtin" && o.tasks.empty()) {
    fail_input("tasks", "no built-in tasks selected: expected at least one");
  }
  const int64_t n_ctx = model.config().n_ctx_train;
  for (int64_t length : o.lengths) {
    if (n_ctx > 0 && length > n_ctx) {
      fail_input("lengths", "length {} exceeds the model's context of {} tokens", length, n_ctx);
    }
    if (length < o.max_answer + kMinContextTokens) {
      fail_input("lengths",
                 "length {} leaves no room for a prompt beside a {}-token answer (expected >= {})",
                 length, o.max_answer, o.max_answer + kMinContextTokens);
    }
  }
  if (o.source == "builtin") {  // the shortest length must hold every task's frame
    const int64_t shortest = *std::min_element(o.lengths.begin(), o.lengths.end());
    std::mt19937_64 rng(o.seed);
    for (TaskKind kind : o.tasks) {
      make_task_prompt(kind, model.tokenizer(), {shortest - o.max_answer, 0.5, o.answer_cue}, rng);
    }
  }
  if (o.source != "builtin" && !std::filesystem::exists(o.source)) {
    fail_input("source",
               "{}: no such file or folder (expected builtin, a .jsonl file, a text file or a "
               "folder)",
               o.source);
  }
}

CalibrationSet calibrate(const Model& model, const CalibrateOptions& options,
                         const std::string& output_path, bool show_progress) {
  check_calibrate_options(options, model);
  CalibrationSet set = empty_set(model, options);
  if (std::filesystem::exists(output_path)) {
    CalibrationSet earlier = read_calibration(output_path);
    if (!earlier.same_settings(set)) {
      fail(
          "{}: holds a calibration set made with other settings or another model; remove it or "
          "write elsewhere",
          output_path);
    }
    if (!earlier.samples.empty()) {
      spdlog::info("{}: resuming after {} finished samples", output_path, earlier.samples.size());
    }
    set = std::move(earlier);
  }
  std::vector<UserRecord> records;
  if (options.source != "builtin") {
    records = options.source.ends_with(".jsonl") ? read_jsonl_records(options.source)
                                                 : read_text_records(options.source);
  }
  const auto total = static_cast<int64_t>(options.lengths.size()) * options.samples_per_length;
  Progress progress("calibrate", total, static_cast<int64_t>(set.samples.size()), show_progress);
  const SamplingParams greedy = greedy_sampling();
  for (int64_t length : options.lengths) {
    for (int64_t index = 0; index < options.samples_per_length; ++index) {
      if (set.has(length, index)) continue;
      std::seed_seq seeds{static_cast<uint64_t>(options.seed), static_cast<uint64_t>(length),
                          static_cast<uint64_t>(index)};
      std::mt19937_64 rng(seeds);
      CalibrationSample sample;
      sample.length = length;
      sample.index = index;
      const int64_t target = length - options.max_answer;
      if (options.source == "builtin") {
        const TaskKind kind = options.tasks[static_cast<size_t>(index) % options.tasks.size()];
        const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
        const double depth =
            (static_cast<double>(index) + u) / static_cast<double>(options.samples_per_length);
        const TaskPrompt task =
            make_task_prompt(kind, model.tokenizer(), {target, depth, options.answer_cue}, rng);
        sample.task = std::string(task_kind_name(kind));
        sample.depth = task.depth;
        sample.expected = task.expected;
        sample.prompt = model.tokenizer().encode(task.prompt, true, false);
      } else {
        const size_t r = static_cast<size_t>(index) % records.size();
        sample.task = records[r].question.empty() ? "text" : "jsonl";
        sample.prompt = user_prompt(model.tokenizer(), records, r, target);
      }
      KvCache cache(kv_shape(model.config(),
                             static_cast<int64_t>(sample.prompt.size()) + options.max_answer, 1,
                             kernels::KvType::kF32));
      const GenerateResult answer = generate(
          model, cache, 0, {sample.prompt, options.max_answer, greedy, {}, options.stop_at_newline},
          nullptr, options.n_threads);
      sample.answer = answer.tokens;
      sample.answer_text = answer.text;
      if (sample.answer.empty()) {
        spdlog::warn("length {} sample {}: the model's answer is empty (it ended at once)", length,
                     index);
      }
      const int64_t tokens = static_cast<int64_t>(sample.prompt.size() + sample.answer.size());
      set.samples.push_back(std::move(sample));
      write_calibration(set, output_path);
      progress.step(tokens);
    }
  }
  return set;
}

}  // namespace moa
