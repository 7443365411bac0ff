// The forward pass on real GGUF files from ../shared/models against llama.cpp's outputs
// (models/reference, produced with an F32 KV cache): logits within the per-type tolerances of
// models/README.md, greedy token sequences up to the first step whose margin is within the error
// bound, and stories260K's well-known continuation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "engine/forward.h"
#include "support/assets.h"
#include "support/test_inputs.h"

namespace moa {
namespace {

using test::kThreads;

// Reference logits: rows for each prompt position, then one per greedy step fed back.
struct GoldenCase {
  const char* model;
  const char* reference_stem;
  double logits_tolerance;  // max abs logit diff vs llama.cpp
  // Greedy steps whose top1-top2 margin is below this are fragile (either choice is consistent
  // with the error) and end the comparison.
  double fragile_margin;
  // Fewer greedy steps compared (over all prompts) than this fails: a fragile margin set too
  // wide, or a reference that changed, must not pass by comparing almost nothing.
  size_t min_greedy_steps;
};

// Tolerances (moa's measured max diff in brackets): F32 ~1e-4 [7.2e-6]; stories260K-F16 8e-3
// [7.3e-3], below llama.cpp's own F16-vs-F32 gap (0.015): moa rounds activations to F16 as
// llama.cpp does, and what remains is elements that F32 noise rounds to the neighbouring half;
// Q8_0/Q4_0 1e-4 [1.9e-6 / 1.9e-6]: moa rounds activations to Q8_0 blocks exactly as llama.cpp
// does (models/README.md allows 0.25 for implementations that do not); llama-2-tiny-random (F16)
// 1e-4 [3e-8]. Fragile margins are twice the tolerance, except for Q8_0/Q4_0: a last-bit
// difference upstream can flip one activation's Q8 rounding, which moves the logits by ~1e-2
// (seen once in 800 greedy steps of Q4_0). The minimum step counts are the steps these margins
// leave in the reference files (F32: all 328).
const GoldenCase kGoldenCases[] = {
    {"models/stories260K.gguf", "models/reference/stories260K", 1e-4, 2e-4, 328},
    {"models/stories260K-F16.gguf", "models/reference/stories260K-F16", 8e-3, 1.6e-2, 313},
    {"models/stories260K-Q8_0.gguf", "models/reference/stories260K-Q8_0", 1e-4, 5e-2, 182},
    {"models/stories260K-Q4_0.gguf", "models/reference/stories260K-Q4_0", 1e-4, 5e-2, 162},
    {"models/llama-2-tiny-random.gguf", "models/reference/llama-2-tiny-random", 1e-4, 2e-4, 32},
};

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::istringstream in(test::read_file(path));
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  }
  return lines;
}

std::vector<TokenId> greedy_ids(const nlohmann::json& line) {
  return line.at("greedy_ids").get<std::vector<TokenId>>();
}

class GoldenLogits : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenLogits, MatchLlamaCppWithinTolerance) {
  const GoldenCase& c = GetParam();
  MOA_REQUIRE_ASSET(model_path, c.model);
  MOA_REQUIRE_ASSET(logits_path, std::string(c.reference_stem) + ".once_upon_a_time.logits.f32");
  MOA_REQUIRE_ASSET(jsonl_path, std::string(c.reference_stem) + ".greedy.jsonl");
  const Model model = Model::load(model_path);
  const int64_t n_vocab = model.config().n_vocab;
  const std::vector<float> want = test::read_f32_file(logits_path);
  ASSERT_EQ(want.size() % static_cast<size_t>(n_vocab), 0u);
  const auto n_rows = static_cast<int64_t>(want.size()) / n_vocab;

  nlohmann::json once;
  for (const nlohmann::json& line : read_jsonl(jsonl_path)) {
    if (line.at("prompt") == "Once upon a time") once = line;
  }
  ASSERT_FALSE(once.is_null());
  const auto prompt = once.at("prompt_ids").get<std::vector<TokenId>>();
  EXPECT_EQ(model.tokenizer().encode("Once upon a time", true, false), prompt);

  KvCache cache(kv_shape(model.config(), 64, 1, kernels::KvType::kF32));
  Logits got = forward_tokens(model, cache, 0, prompt, LogitsMode::kAll, kThreads);
  const std::vector<TokenId> greedy = greedy_ids(once);
  for (int64_t step = 0; got.n_rows() < n_rows; ++step) {
    const Logits next =
        forward_tokens(model, cache, 0, std::span(&greedy[step], 1), LogitsMode::kLast, kThreads);
    got.data.insert(got.data.end(), next.data.begin(), next.data.end());
  }
  double max_diff = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    max_diff = std::max(max_diff, static_cast<double>(std::abs(got.data[i] - want[i])));
  }
  RecordProperty("max_abs_logit_diff", std::to_string(max_diff));
  std::printf("%s: max |logit diff| vs llama.cpp %.3g\n", c.model, max_diff);
  EXPECT_LE(max_diff, c.logits_tolerance) << c.model;
}

// Greedy decoding reproduces llama.cpp's ids up to the first step whose top1-top2 margin is
// within the case's fragile margin.
TEST_P(GoldenLogits, GreedyIdsMatchUpToFragileSteps) {
  const GoldenCase& c = GetParam();
  MOA_REQUIRE_ASSET(model_path, c.model);
  MOA_REQUIRE_ASSET(jsonl_path, std::string(c.reference_stem) + ".greedy.jsonl");
  const Model model = Model::load(model_path);
  size_t total_compared = 0;
  for (const nlohmann::json& line : read_jsonl(jsonl_path)) {
    const auto prompt = line.at("prompt_ids").get<std::vector<TokenId>>();
    const std::vector<TokenId> want = greedy_ids(line);
    const auto margins = line.at("greedy_top1_minus_top2").get<std::vector<double>>();
    KvCache cache(kv_shape(model.config(), 512, 1, kernels::KvType::kF32));
    Logits logits = forward_tokens(model, cache, 0, prompt, LogitsMode::kLast, kThreads);
    size_t compared = 0;
    for (size_t step = 0; step < want.size(); ++step) {
      if (margins[step] <= c.fragile_margin) break;
      const TokenId got = static_cast<TokenId>(
          std::max_element(logits.data.begin(), logits.data.end()) - logits.data.begin());
      ASSERT_EQ(got, want[step]) << c.model << " prompt '" << line.at("prompt").get<std::string>()
                                 << "' step " << step;
      ++compared;
      total_compared += 1;
      logits =
          forward_tokens(model, cache, 0, std::span(&want[step], 1), LogitsMode::kLast, kThreads);
    }
    if (std::string(c.model).find("stories260K.gguf") != std::string::npos) {
      EXPECT_EQ(compared, want.size()) << "F32 margins are all above the bound";
    }
  }
  RecordProperty("greedy_steps_compared", std::to_string(total_compared));
  std::printf("%s: %zu greedy steps compared\n", c.model, total_compared);
  EXPECT_GE(total_compared, c.min_greedy_steps) << c.model;
}

INSTANTIATE_TEST_SUITE_P(SharedModels, GoldenLogits, ::testing::ValuesIn(kGoldenCases),
                         [](const auto& info) {
                           std::string name = std::filesystem::path(info.param.model).stem();
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

TEST(Stories260K, GreedyContinuationNamesLily) {
  MOA_REQUIRE_ASSET(model_path, "models/stories260K.gguf");
  const Model model = Model::load(model_path);
  std::vector<TokenId> ids = model.tokenizer().encode("Once upon a time", true, false);
  KvCache cache(kv_shape(model.config(), 64, 1, kernels::KvType::kF16));
  Logits logits = forward_tokens(model, cache, 0, ids, LogitsMode::kLast, kThreads);
  std::vector<TokenId> generated;
  for (int i = 0; i < 16; ++i) {
    const TokenId next = static_cast<TokenId>(
        std::max_element(logits.data.begin(), logits.data.end()) - logits.data.begin());
    generated.push_back(next);
    logits = forward_tokens(model, cache, 0, std::span(&next, 1), LogitsMode::kLast, kThreads);
  }
  const std::string text = model.tokenizer().decode(generated);
  EXPECT_NE(text.find("there was a little girl named Lily"), std::string::npos) << text;
}

}  // namespace
}  // namespace moa
