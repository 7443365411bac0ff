// Calibration set file format (see calibration_set.h and docs/calibration.md).
#include "calibrate/calibration_set.h"

#include <algorithm>
#include <functional>
#include <limits>

#include "plan/plan_io.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/json_fields.h"
#include "util/mapped_file.h"

namespace moa {

using nlohmann::json;
namespace jf = json_fields;

bool CalibrationSet::has(int64_t length, int64_t index) const {
  return std::any_of(samples.begin(), samples.end(), [&](const CalibrationSample& s) {
    return s.length == length && s.index == index;
  });
}

bool CalibrationSet::same_settings(const CalibrationSet& o) const {
  return model.architecture == o.model.architecture && model.n_layer == o.model.n_layer &&
         model.n_head == o.model.n_head && model.n_head_kv == o.model.n_head_kv &&
         model.hash == o.model.hash && n_vocab == o.n_vocab && source == o.source &&
         tasks == o.tasks && seed == o.seed && lengths == o.lengths &&
         samples_per_length == o.samples_per_length && max_answer == o.max_answer &&
         stop_at_newline == o.stop_at_newline && answer_cue == o.answer_cue;
}

std::string calibration_to_json(const CalibrationSet& set) {
  json j;
  j["format"] = "moa-calibration";
  j["version"] = CalibrationSet::kFormatVersion;
  j["model"] = {{"architecture", set.model.architecture},
                {"n_layer", set.model.n_layer},
                {"n_head", set.model.n_head},
                {"n_head_kv", set.model.n_head_kv},
                {"n_vocab", set.n_vocab},
                {"hash", set.model.hash}};
  j["source"] = set.source;
  j["tasks"] = set.tasks;
  j["seed"] = set.seed;
  j["lengths"] = set.lengths;
  j["samples_per_length"] = set.samples_per_length;
  j["max_answer"] = set.max_answer;
  j["stop_at_newline"] = set.stop_at_newline;
  j["answer_cue"] = set.answer_cue;
  j["samples"] = json::array();
  for (const CalibrationSample& s : set.samples) {
    j["samples"].push_back({{"length", s.length},
                            {"index", s.index},
                            {"task", s.task},
                            {"depth", s.depth},
                            {"expected", s.expected},
                            {"answer_text", s.answer_text},
                            {"prompt", s.prompt},
                            {"answer", s.answer}});
  }
  return json_fields::json_text(j) + "\n";
}

CalibrationSet calibration_from_json(const std::string& text, const std::string& file) {
  const json j = jf::parse(text, file, "a moa calibration set");
  if (!j.is_object()) fail("{}: expected a JSON object (a moa calibration set)", file);
  if (jf::string_field(j, "format", file, "") != "moa-calibration") {
    fail("{}: format: expected \"moa-calibration\"", file);
  }
  const int64_t version = jf::integer_field(j, "version", file, "", 0);
  if (version != CalibrationSet::kFormatVersion) {
    fail("{}: version: {} is not supported (supported: {})", file, version,
         CalibrationSet::kFormatVersion);
  }
  constexpr int64_t kMaxCount = int64_t{1} << 40;
  CalibrationSet set;
  const json& m = jf::member(j, "model", file, "");
  set.model = model_identity_from_json(m, file);
  set.n_vocab =
      jf::integer_field(m, "n_vocab", file, "model.", 1, std::numeric_limits<int32_t>::max());
  set.source = jf::string_field(j, "source", file, "");
  for (const json& t : jf::array_field(j, "tasks", file, "")) {
    if (!t.is_string()) fail("{}: tasks: expected strings", file);
    set.tasks.push_back(t.get<std::string>());
  }
  set.seed = static_cast<uint64_t>(
      jf::integer_field(j, "seed", file, "", 0, std::numeric_limits<int64_t>::max()));
  set.lengths = jf::integer_array(j, "lengths", file, "", 1, kMaxCount);
  if (set.lengths.empty()) fail("{}: lengths: expected at least one length", file);
  if (!std::is_sorted(set.lengths.begin(), set.lengths.end(), std::less_equal<>())) {
    fail("{}: lengths: expected increasing lengths, each once", file);
  }
  set.samples_per_length = jf::integer_field(j, "samples_per_length", file, "", 1, kMaxCount);
  set.max_answer = jf::integer_field(j, "max_answer", file, "", 1, kMaxCount);
  set.stop_at_newline = jf::bool_field(j, "stop_at_newline", file, "");
  set.answer_cue = jf::bool_field(j, "answer_cue", file, "");
  const json& samples = jf::array_field(j, "samples", file, "");
  const int64_t max_token = set.n_vocab - 1;
  for (size_t i = 0; i < samples.size(); ++i) {
    const std::string path = "samples[" + std::to_string(i) + "].";
    const json& s = samples[i];
    CalibrationSample sample;
    sample.length = jf::integer_field(s, "length", file, path, 1, kMaxCount);
    sample.index = jf::integer_field(s, "index", file, path, 0, set.samples_per_length - 1);
    if (std::find(set.lengths.begin(), set.lengths.end(), sample.length) == set.lengths.end()) {
      fail("{}: {}length: {} is not one of the set's lengths", file, path, sample.length);
    }
    if (set.has(sample.length, sample.index)) {
      fail("{}: {}: sample {} of length {} appears twice", file, path, sample.index, sample.length);
    }
    sample.task = jf::string_field(s, "task", file, path);
    sample.depth = jf::number_field(s, "depth", file, path);
    sample.expected = jf::string_field(s, "expected", file, path);
    sample.answer_text = jf::string_field(s, "answer_text", file, path);
    for (int64_t id : jf::integer_array(s, "prompt", file, path, 0, max_token)) {
      sample.prompt.push_back(static_cast<TokenId>(id));
    }
    for (int64_t id : jf::integer_array(s, "answer", file, path, 0, max_token)) {
      sample.answer.push_back(static_cast<TokenId>(id));
    }
    if (sample.prompt.empty()) fail("{}: {}prompt: expected at least one token", file, path);
    if (static_cast<int64_t>(sample.prompt.size() + sample.answer.size()) > sample.length) {
      fail("{}: {}: {} prompt + {} answer tokens exceed the sample's length {}", file, path,
           sample.prompt.size(), sample.answer.size(), sample.length);
    }
    set.samples.push_back(std::move(sample));
  }
  return set;
}

CalibrationSet read_calibration(const std::string& path) {
  return calibration_from_json(read_regular_file(path), path);
}

void write_calibration(const CalibrationSet& set, const std::string& path) {
  write_file_atomically(path, calibration_to_json(set));
}

void check_calibration_matches(const CalibrationSet& set, const ModelIdentity& model,
                               int64_t n_vocab, const std::string& file) {
  check_identity_matches(set.model, model, file, "calibration set");
  if (set.model.hash != model.hash || set.n_vocab != n_vocab) {
    fail(
        "{}: calibration set was made for another model or tokenizer (hash {}, vocab {}); this "
        "model: hash {}, vocab {}",
        file, set.model.hash, set.n_vocab, model.hash, n_vocab);
  }
}

void check_calibration_complete(const CalibrationSet& set, const std::string& file) {
  for (int64_t length : set.lengths) {
    const auto made = std::count_if(set.samples.begin(), set.samples.end(),
                                    [&](const CalibrationSample& s) { return s.length == length; });
    if (made < set.samples_per_length) {
      fail(
          "{}: length {} has {} of its {} samples: the calibration set is unfinished (run the "
          "same moa calibrate command again to finish it)",
          file, length, made, set.samples_per_length);
    }
  }
}

}  // namespace moa
