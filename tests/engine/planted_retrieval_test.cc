// The constructed planted-retrieval model (../shared/models/planted-retrieval.gguf, heads known
// from planted-retrieval.heads.json) on its LongEval-style and passkey cases
// (../shared/data/planted): dense attention answers them, a plan that keeps every head's
// planted span (the retrieval head global) answers them at ~10% KV density, and a uniform
// StreamingLLM window at 25% density does not. This is the engine-level ground truth the
// profiler and optimizer are later checked against.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "engine/forward.h"
#include "engine/generate.h"
#include "kv/kv_cache.h"
#include "kv/static_kv_cache.h"
#include "plan/plan.h"
#include "support/assets.h"
#include "tasks/long_range_tasks.h"

namespace moa {
namespace {

constexpr int kPlantedThreads = 1;  // ctest runs two test processes on two cores
constexpr int64_t kAnswerTokens = 8;
constexpr int64_t kSinks = 4;

struct PlantedCase {
  std::string id;
  std::string prompt;
  std::string expected;
};

std::vector<PlantedCase> read_cases(const std::string& path, size_t limit) {
  std::istringstream in(test::read_file(path));
  std::vector<PlantedCase> cases;
  for (std::string line; std::getline(in, line) && cases.size() < limit;) {
    if (line.empty()) continue;
    const nlohmann::json j = nlohmann::json::parse(line);
    const nlohmann::json& expected = j.at("expected");
    cases.push_back({j.at("id").get<std::string>(), j.at("prompt").get<std::string>(),
                     expected.is_string() ? expected.get<std::string>() : expected.dump()});
  }
  return cases;
}

std::string greedy_answer(const Model& model, AttentionCache& cache,
                          const std::vector<TokenId>& ids) {
  return generate(model, cache, 0, {ids, kAnswerTokens, greedy_sampling(), {}, false}, nullptr,
                  kPlantedThreads)
      .text;
}

// Every head's planted span from the heads map; the retrieval head sees everything.
SparsePlan planted_plan(const Model& model, const nlohmann::json& heads) {
  SparsePlan plan =
      uniform_plan(identity_of(model.config(), model.file().metadata_hash()), 1, kSinks);
  for (const nlohmann::json& head : heads.at("heads")) {
    const nlohmann::json& span = head.at("intended_span");
    ElasticRule& rule = plan.rules.at(head.at("layer").get<size_t>()).at(head.at("head"));
    rule = span.is_string() ? ElasticRule{0.0, 1.0} : ElasticRule{span.get<double>(), 0.0};
  }
  return plan;
}

enum class Attention { kDense, kPlanted, kStreaming25 };

// Fraction of `cases` answered correctly with the given attention.
double accuracy(const Model& model, const std::vector<PlantedCase>& cases, Attention attention,
                const nlohmann::json& heads) {
  int correct = 0;
  for (const PlantedCase& c : cases) {
    const std::vector<TokenId> ids = model.tokenizer().encode(c.prompt, true, false);
    const auto n_ctx = static_cast<int64_t>(ids.size()) + kAnswerTokens;
    std::optional<SparsePlan> plan;
    if (attention == Attention::kPlanted) plan = planted_plan(model, heads);
    if (attention == Attention::kStreaming25) {
      plan = uniform_plan(identity_of(model.config(), model.file().metadata_hash()),
                          n_ctx / 4 - kSinks, kSinks);
    }
    std::string answer;
    if (plan) {
      StaticKvCache cache(kv_shape(model.config(), n_ctx, 1, kernels::KvType::kF16), *plan);
      answer = greedy_answer(model, cache, ids);
    } else {
      KvCache cache(kv_shape(model.config(), n_ctx, 1, kernels::KvType::kF16));
      answer = greedy_answer(model, cache, ids);
    }
    if (first_number(answer) == c.expected) {
      ++correct;
    } else if (attention != Attention::kStreaming25) {
      ADD_FAILURE() << c.id << ": expected " << c.expected << ", answered '" << answer << "'";
    }
  }
  return static_cast<double>(correct) / static_cast<double>(cases.size());
}

class PlantedRetrieval : public ::testing::Test {
 protected:
  void SetUp() override {
    model_path_ = test::asset_path("models/planted-retrieval.gguf");
    heads_path_ = test::asset_path("models/planted-retrieval.heads.json");
    lines_path_ = test::asset_path("data/planted/cases_lines.jsonl");
    passkey_path_ = test::asset_path("data/planted/cases_passkey.jsonl");
    if (model_path_.empty() || heads_path_.empty() || lines_path_.empty() ||
        passkey_path_.empty()) {
      GTEST_SKIP() << "\n*** MISSING TEST ASSET: " << test::assets_dir()
                   << "/models/planted-retrieval.gguf, .heads.json or data/planted/*.jsonl ***\n";
    }
  }
  std::string model_path_, heads_path_, lines_path_, passkey_path_;
};

// Ten of the 20-line records (~630 tokens) and the ~1K-token passkeys, so the test stays quick
// (four records and one passkey under the sanitizers, where it took three minutes).
TEST_F(PlantedRetrieval, DenseAndThePlantedPlanAnswerAndAQuarterWindowDoesNot) {
  const Model model = Model::load(model_path_);
  const nlohmann::json heads = nlohmann::json::parse(test::read_file(heads_path_));
  const size_t n_lines = test::sanitized_run() ? 4 : 10;
  const std::vector<PlantedCase> lines = read_cases(lines_path_, n_lines);
  ASSERT_EQ(lines.size(), n_lines);
  EXPECT_EQ(accuracy(model, lines, Attention::kDense, heads), 1.0);
  EXPECT_EQ(accuracy(model, lines, Attention::kPlanted, heads), 1.0);
  EXPECT_LE(accuracy(model, lines, Attention::kStreaming25, heads), 0.5);

  std::vector<PlantedCase> passkeys = read_cases(passkey_path_, 100);
  std::erase_if(passkeys, [](const PlantedCase& c) { return !c.id.starts_with("passkey-1024"); });
  ASSERT_FALSE(passkeys.empty());
  if (test::sanitized_run()) passkeys.resize(1);
  EXPECT_EQ(accuracy(model, passkeys, Attention::kDense, heads), 1.0);
  EXPECT_EQ(accuracy(model, passkeys, Attention::kPlanted, heads), 1.0);
}

// The planted plan's KV density at a record's length: the figure the README quotes (~0.09).
TEST_F(PlantedRetrieval, PlantedPlanKeepsAboutATenthOfTheKeys) {
  const Model model = Model::load(model_path_);
  const nlohmann::json heads = nlohmann::json::parse(test::read_file(heads_path_));
  const SparsePlan plan = planted_plan(model, heads);
  EXPECT_LT(kv_density(plan, 2560), 0.12);
  EXPECT_GT(kv_density(plan, 2560), 0.08);
}

}  // namespace
}  // namespace moa
