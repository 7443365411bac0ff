// The profiling loop: a run resumed after an interruption equals an uninterrupted one bit for
// bit, inputs that cannot be profiled are refused with one clear error, and on the planted-
// retrieval model (heads with known jobs) the influence finds the retrieval head and keeps the
// positional/local heads' influence inside their planted spans.
#include "profile/profiler.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "calibrate/calibrate.h"
#include "engine/random_model.h"
#include "support/assets.h"
#include "util/error.h"

namespace moa {
namespace {

Model random_model() {
  RandomModelSpec spec;
  spec.n_ctx = 256;
  return Model::from_file(gguf::GgufFile::parse(build_random_model(spec).serialize(), "random"));
}

CalibrationSample sample(int64_t length, int64_t index, int64_t n_prompt, int64_t n_answer) {
  CalibrationSample s;
  s.length = length;
  s.index = index;
  s.task = "text";
  for (int64_t i = 0; i < n_prompt; ++i)
    s.prompt.push_back(static_cast<TokenId>((i * 31 + index * 7 + 1) % 300));
  for (int64_t i = 0; i < n_answer; ++i)
    s.answer.push_back(static_cast<TokenId>((i * 11 + 5) % 300));
  return s;
}

CalibrationSet calibration_for(const Model& model) {
  CalibrationSet set;
  set.model = identity_of(model.config(), model.file().metadata_hash());
  set.n_vocab = model.config().n_vocab;
  set.source = "text";
  set.lengths = {48, 96};
  set.samples_per_length = 2;
  set.max_answer = 6;
  set.samples = {sample(48, 0, 40, 6), sample(96, 0, 88, 5), sample(48, 1, 42, 4),
                 sample(96, 1, 90, 6)};
  return set;
}

TEST(Profiler, ResumedRunEqualsAnUninterruptedOne) {
  const Model model = random_model();
  const CalibrationSet set = calibration_for(model);
  const std::string dir = test::temp_dir();
  const ProfileOptions options{4, 2};
  profile_calibration(model, set, dir + "/calib.json", options, dir + "/whole.profile", false);

  CalibrationSet first_two = set;
  first_two.samples.resize(2);
  profile_calibration(model, first_two, dir + "/calib.json", options, dir + "/resumed.profile",
                      false);
  const InfluenceProfile resumed = profile_calibration(model, set, dir + "/calib.json", options,
                                                       dir + "/resumed.profile", false);
  EXPECT_EQ(resumed.at_length(48).samples, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(test::read_file(dir + "/resumed.profile"), test::read_file(dir + "/whole.profile"));
  EXPECT_GT(resumed.total_influence(96, 1, 0), 0.0);
}

TEST(Profiler, SkipsEmptyAnswersAndRefusesASetWithNoneLeft) {
  const Model model = random_model();
  CalibrationSet set = calibration_for(model);
  set.samples[1].answer.clear();
  const std::string dir = test::temp_dir();
  const InfluenceProfile p =
      profile_calibration(model, set, dir + "/c.json", {4, 1}, dir + "/p.profile", false);
  EXPECT_EQ(p.at_length(96).samples, (std::vector<int64_t>{1}));
  for (CalibrationSample& s : set.samples) s.answer.clear();
  EXPECT_THROW(profile_calibration(model, set, dir + "/c.json", {4, 1}, dir + "/q.profile", false),
               Error);
}

void expect_error(const std::function<void()>& run, const std::string& fragment) {
  try {
    run();
    ADD_FAILURE() << "no error; expected one containing " << fragment;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Profiler, RefusesInputsItCannotProfile) {
  const Model model = random_model();
  const CalibrationSet set = calibration_for(model);
  expect_error([&] { check_profile_inputs(set, "c.json", model, {48, 1}); }, "not below");
  CalibrationSet long_set = set;
  long_set.lengths.push_back(512);
  expect_error([&] { check_profile_inputs(long_set, "c.json", model, {4, 1}); }, "context");
  CalibrationSet other = set;
  other.model.hash = "0000";
  expect_error([&] { check_profile_inputs(other, "c.json", model, {4, 1}); }, "c.json");
  CalibrationSet overfull = set;
  overfull.samples[0].prompt.resize(60);
  expect_error([&] { check_profile_inputs(overfull, "c.json", model, {4, 1}); }, "more than");

  const std::string dir = test::temp_dir();
  profile_calibration(model, set, dir + "/c.json", {4, 1}, dir + "/p.profile", false);
  expect_error(
      [&] {
        profile_calibration(model, set, dir + "/c.json", {8, 1}, dir + "/p.profile", false);
      },
      "sinks");
  std::filesystem::resize_file(dir + "/p.profile",
                               std::filesystem::file_size(dir + "/p.profile") - 8);
  expect_error(
      [&] {
        profile_calibration(model, set, dir + "/c.json", {4, 1}, dir + "/p.profile", false);
      },
      "truncated");
}

// A profile records how its W^T dy products were taken, and a run that would take them the
// other way refuses to add samples to it.
TEST(Profiler, RefusesToMixExactAndTransposedBackwardSamples) {
  RandomModelSpec spec;
  spec.n_ctx = 256;
  spec.weight_type = gguf::TensorType::kQ8_0;
  const Model model =
      Model::from_file(gguf::GgufFile::parse(build_random_model(spec).serialize(), "random"));
  if (std::string(BackwardWeights(model, false).mode()) == "exact") {
    GTEST_SKIP() << "no int8 GEMM in this build/CPU: every backward is exact here";
  }
  const CalibrationSet set = calibration_for(model);
  const std::string dir = test::temp_dir();
  CalibrationSet first = set;
  first.samples.resize(1);
  const ProfileOptions fast{4, 1};
  ProfileOptions exact = fast;
  exact.exact_backward = true;
  profile_calibration(model, first, dir + "/c.json", fast, dir + "/p.profile", false);
  EXPECT_EQ(read_profile(dir + "/p.profile").backward, "q8_0-transposes");
  expect_error(
      [&] { profile_calibration(model, set, dir + "/c.json", exact, dir + "/p.profile", false); },
      "made with the q8_0-transposes backward, this run uses exact");
  profile_calibration(model, first, dir + "/c.json", exact, dir + "/e.profile", false);
  EXPECT_EQ(read_profile(dir + "/e.profile").backward, "exact");
}

// Planted-retrieval ground truth (models/README.md): profiled on line-retrieval and passkey
// prompts, the retrieval head (layer 2, head 0) carries the most influence beyond distance 256,
// and each positional/local head keeps >= 95% of its influence within its planted span.
TEST(Profiler, FindsThePlantedRetrievalHeadAndSpans) {
  MOA_REQUIRE_ASSET(model_path, "models/planted-retrieval.gguf");
  MOA_REQUIRE_ASSET(heads_path, "models/planted-retrieval.heads.json");
  const Model model = Model::load(model_path, FileLoad::kMap);
  const std::string dir = test::temp_dir();
  CalibrateOptions calib;
  calib.lengths = {1024};
  calib.tasks = {TaskKind::kLines, TaskKind::kPasskey};
  calib.samples_per_length = 2;
  calib.max_answer = 8;
  calib.n_threads = 2;
  const CalibrationSet set = calibrate(model, calib, dir + "/calib.json", false);
  const InfluenceProfile p =
      profile_calibration(model, set, dir + "/calib.json", {4, 2}, dir + "/p.profile", false);
  const ProfiledLength& l = p.at_length(1024);
  ASSERT_EQ(l.sample_count(), 2);

  double best_far = -1.0;
  int64_t best_layer = -1, best_head = -1;
  for (int64_t layer = 0; layer < 3; ++layer) {
    for (int64_t h = 0; h < 4; ++h) {
      const double far = p.masked_influence(1024, layer, h, 256);
      std::printf("layer %lld head %lld: beyond 256 %.4g, total %.4g\n",
                  static_cast<long long>(layer), static_cast<long long>(h), far,
                  p.total_influence(1024, layer, h));
      if (far > best_far) {
        best_far = far;
        best_layer = layer;
        best_head = h;
      }
    }
  }
  EXPECT_EQ(best_layer, 2);
  EXPECT_EQ(best_head, 0);

  const nlohmann::json heads = nlohmann::json::parse(test::read_file(heads_path))["heads"];
  for (const nlohmann::json& head : heads) {
    const std::string kind = head["kind"];
    if (kind != "positional" && kind != "local") continue;
    const int64_t layer = head["layer"], h = head["head"], span = head["intended_span"];
    const double total = p.total_influence(1024, layer, h);
    const double inside = total - p.masked_influence(1024, layer, h, span);
    std::printf("layer %lld head %lld (%s, span %lld): %.4f inside\n",
                static_cast<long long>(layer), static_cast<long long>(h), kind.c_str(),
                static_cast<long long>(span), inside / total);
    EXPECT_GE(inside, 0.95 * total) << "layer " << layer << " head " << h;
  }
}

}  // namespace
}  // namespace moa
