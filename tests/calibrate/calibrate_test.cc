// Calibration sets: the file round-trips, every field is checked on reading, a run resumed from
// a partial file makes exactly the samples of an uninterrupted run, user JSONL/text sources are
// fitted to the length in the model's tokens, and mismatched models or settings are refused.
#include "calibrate/calibrate.h"

#include <gtest/gtest.h>

#include <fstream>

#include "support/assets.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace moa {
namespace {

using test::error_of;

CalibrateOptions small_options() {
  CalibrateOptions o;
  o.lengths = {600, 900};
  o.samples_per_length = 2;
  o.max_answer = 8;
  o.seed = 9;
  return o;
}

TEST(Calibrate, MakesEverySampleAndResumesAPartialFileExactly) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = Model::load(path, FileLoad::kMap);
  const std::string dir = test::temp_dir();
  const CalibrationSet full = calibrate(model, small_options(), dir + "/full.json", false);
  ASSERT_EQ(full.samples.size(), 4u);
  for (const CalibrationSample& s : full.samples) {
    EXPECT_LE(static_cast<int64_t>(s.prompt.size()) + 8, s.length);
    EXPECT_GT(static_cast<int64_t>(s.prompt.size()), s.length - 8 - 200);
    EXPECT_EQ(s.prompt.front(), model.tokenizer().bos());
    EXPECT_LE(s.answer.size(), 8u);
    std::string pieces;  // streamed text: every piece, the first one's space included
    for (TokenId id : s.answer) pieces += model.tokenizer().token_to_piece(id);
    EXPECT_TRUE(pieces.starts_with(s.answer_text)) << pieces << " / " << s.answer_text;
  }
  EXPECT_EQ(full.samples[0].task, "lines");
  EXPECT_EQ(full.samples[1].task, "passkey");

  CalibrationSet partial = full;
  partial.samples.resize(1);
  write_calibration(partial, dir + "/resumed.json");
  const CalibrationSet resumed = calibrate(model, small_options(), dir + "/resumed.json", false);
  EXPECT_EQ(read_regular_file(dir + "/resumed.json"), read_regular_file(dir + "/full.json"));
  EXPECT_EQ(calibration_to_json(resumed), calibration_to_json(full));

  // Rerunning a finished set does no work and changes nothing; other settings are refused.
  calibrate(model, small_options(), dir + "/full.json", false);
  EXPECT_EQ(read_regular_file(dir + "/full.json"), calibration_to_json(full));
  CalibrateOptions other = small_options();
  other.seed = 10;
  EXPECT_NE(
      error_of([&] { calibrate(model, other, dir + "/full.json", false); }).find("other settings"),
      std::string::npos);
}

TEST(Calibrate, RoundTripsAndChecksEveryFieldOnReading) {
  CalibrationSet set;
  set.model = {"llama", 2, 4, 2, "abc"};
  set.n_vocab = 100;
  set.tasks = {"lines"};
  set.seed = 3;
  set.lengths = {64};
  set.samples_per_length = 2;
  set.max_answer = 4;
  set.samples.push_back({64, 1, "lines", 0.25, "123", {1, 5, 6}, {7, 8}, "12"});
  const std::string text = calibration_to_json(set);
  EXPECT_EQ(calibration_to_json(calibration_from_json(text, "c.json")), text);

  auto broken = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    const size_t at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    t.replace(at, from.size(), to);
    return error_of([&] { calibration_from_json(t, "c.json"); });
  };
  EXPECT_NE(broken("\"version\":1", "\"version\":4294967297").find("c.json: version"),
            std::string::npos);
  EXPECT_NE(broken("[7,8]", "[7,100]").find("samples[0].answer[1]"), std::string::npos);
  EXPECT_NE(broken("\"index\":1", "\"index\":2").find("samples[0].index"), std::string::npos);
  EXPECT_NE(broken("\"length\":64,", "\"length\":65,").find("not one of the set's lengths"),
            std::string::npos);
  EXPECT_NE(broken("\"seed\":3", "\"seed\":\"3\"").find("seed: expected an integer"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              calibration_from_json(text.substr(0, text.size() / 2), "c.json");
            }).find("c.json: not valid JSON"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              check_calibration_matches(set, {"llama", 2, 4, 2, "xyz"}, 100, "c");
            }).find("calibration set was made for model hash abc"),
            std::string::npos);
  EXPECT_NE(broken("\"lengths\":[64]", "\"lengths\":[64,64]")
                .find("c.json: lengths: expected increasing lengths, each once"),
            std::string::npos);
  // One of length 64's two samples: a calibrate run killed before the end.
  EXPECT_NE(error_of([&] {
              check_calibration_complete(set, "c");
            }).find("c: length 64 has 1 of its 2 samples: the calibration set is unfinished"),
            std::string::npos);
  set.samples.push_back({64, 0, "lines", 0.75, "456", {1, 5, 6}, {7, 8}, "45"});
  EXPECT_NO_THROW(check_calibration_complete(set, "c"));
  EXPECT_NO_THROW(check_calibration_matches(set, set.model, 100, "c"));
  EXPECT_THROW(check_calibration_matches(set, set.model, 101, "c"), Error);
}

TEST(Calibrate, FitsUserRecordsToTheLengthInTheModelsTokens) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = Model::load(path, FileLoad::kMap);
  const std::string dir = test::temp_dir();
  std::string long_story;
  for (int i = 0; i < 200; ++i) long_story += "Tom saw a big red ball and ran to the park. ";
  write_file_atomically(
      dir + "/qa.jsonl",
      "{\"context\": \"" + long_story +
          "The end.\", \"question\": \"What did Tom see?\"}\n"
          "{\"context\": \"Lily had a cat.\", \"question\": \"Who had a cat?\"}\n");
  CalibrateOptions o = small_options();
  o.source = dir + "/qa.jsonl";
  o.lengths = {400};
  const CalibrationSet set = calibrate(model, o, dir + "/qa.json", false);
  ASSERT_EQ(set.samples.size(), 2u);
  const Tokenizer& tok = model.tokenizer();
  for (const CalibrationSample& s : set.samples) {
    EXPECT_EQ(s.task, "jsonl");
    EXPECT_LE(static_cast<int64_t>(s.prompt.size()), 400 - 8);  // truncated or filled
    EXPECT_GE(static_cast<int64_t>(s.prompt.size()), 400 - 8 - 4);
  }
  const std::string first = tok.decode(set.samples[0].prompt);
  EXPECT_TRUE(first.starts_with(" Tom saw a big red ball"))
      << first.substr(0, 80);  // both ends kept
  EXPECT_TRUE(first.ends_with("The end.\n\nWhat did Tom see?")) << first.substr(first.size() - 80);
  const std::string second = tok.decode(set.samples[1].prompt);
  EXPECT_TRUE(second.ends_with("Lily had a cat.\n\nWho had a cat?"));  // filled in front

  write_file_atomically(dir + "/bad.jsonl",
                        "{\"context\": \"a\", \"question\": \"b\"}\n{\"context\": 5}\n");
  o.source = dir + "/bad.jsonl";
  EXPECT_NE(error_of([&] {
              calibrate(model, o, dir + "/bad.json", false);
            }).find("bad.jsonl:2: context: expected a string"),
            std::string::npos);
}

TEST(Calibrate, RefusesLengthsBeyondTheContextOrTooShortForTheTask) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = Model::load(path, FileLoad::kMap);
  CalibrateOptions o = small_options();
  o.lengths = {4096};
  EXPECT_NE(error_of([&] {
              check_calibrate_options(o, model);
            }).find("exceeds the model's context of 2048"),
            std::string::npos);
  o.lengths = {200};
  EXPECT_NE(error_of([&] { check_calibrate_options(o, model); }).find("cannot hold the task"),
            std::string::npos);
  o.lengths = {20};
  EXPECT_NE(error_of([&] { check_calibrate_options(o, model); }).find("no room for a prompt"),
            std::string::npos);
  o.lengths = {600};
  o.source = "/nonexistent/file.jsonl";
  EXPECT_NE(error_of([&] { check_calibrate_options(o, model); }).find("no such file"),
            std::string::npos);
}

}  // namespace
}  // namespace moa
