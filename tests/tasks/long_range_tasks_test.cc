// Long-range task prompts: sized in the model's own tokens (within one item of the budget, never
// over), the needle where the depth says, the answer in the context, deterministic per seed;
// and, on the constructed planted-retrieval model, prompts a dense model answers correctly.
#include "tasks/long_range_tasks.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "engine/forward.h"
#include "engine/generate.h"
#include "kv/kv_cache.h"
#include "support/assets.h"
#include "util/error.h"

namespace moa {
namespace {

constexpr TaskKind kKinds[] = {TaskKind::kLines, TaskKind::kPasskey, TaskKind::kKeyValue};

TEST(LongRangeTasks, FitTheTokenBudgetOfTheModelsOwnTokenizer) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = Model::load(path, FileLoad::kMap);
  for (TaskKind kind : kKinds) {
    for (int64_t target : {600, 1000, 3000}) {
      std::mt19937_64 rng(7);
      const TaskPrompt p = make_task_prompt(kind, model.tokenizer(), {target, 0.5, true}, rng);
      const auto measured =
          static_cast<int64_t>(model.tokenizer().encode(p.prompt, true, false).size());
      EXPECT_EQ(p.n_tokens, measured);
      EXPECT_LE(p.n_tokens, target) << task_kind_name(kind);
      // Within a few items of the budget: one more item would not have fit.
      const double per_item = static_cast<double>(p.n_tokens) / static_cast<double>(p.n_items);
      EXPECT_GE(static_cast<double>(p.n_tokens), static_cast<double>(target) - 2.5 * per_item)
          << task_kind_name(kind) << " " << target;
      EXPECT_NE(p.prompt.find(p.expected), std::string::npos);
      EXPECT_NEAR(p.depth, 0.5, 1.0 / static_cast<double>(p.n_items));
    }
  }
}

TEST(LongRangeTasks, PlaceTheNeedleAtTheRequestedDepth) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = Model::load(path, FileLoad::kMap);
  for (TaskKind kind : kKinds) {
    size_t previous = 0;
    for (double depth : {0.0, 0.25, 0.5, 0.75, 1.0}) {
      std::mt19937_64 rng(3);
      const TaskPrompt p = make_task_prompt(kind, model.tokenizer(), {2000, depth, true}, rng);
      // The first occurrence of the answer moves forward through the context with the depth.
      const size_t at = p.prompt.find(p.expected);
      ASSERT_NE(at, std::string::npos);
      if (depth > 0.0) {
        EXPECT_GT(at, previous) << task_kind_name(kind) << " depth " << depth;
      }
      previous = at;
      EXPECT_NEAR(p.depth, depth, 1e-9 + 0.5 / static_cast<double>(p.n_items - 1));
    }
  }
}

TEST(LongRangeTasks, AreDeterministicPerSeedAndEndWithTheirCue) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = Model::load(path, FileLoad::kMap);
  for (TaskKind kind : kKinds) {
    std::mt19937_64 a(11), b(11), c(12);
    const TaskPrompt pa = make_task_prompt(kind, model.tokenizer(), {800, -1.0, true}, a);
    const TaskPrompt pb = make_task_prompt(kind, model.tokenizer(), {800, -1.0, true}, b);
    const TaskPrompt pc = make_task_prompt(kind, model.tokenizer(), {800, -1.0, true}, c);
    EXPECT_EQ(pa.prompt, pb.prompt);
    EXPECT_NE(pa.prompt, pc.prompt);
    std::mt19937_64 d(11);
    const TaskPrompt no_cue = make_task_prompt(kind, model.tokenizer(), {800, -1.0, false}, d);
    EXPECT_TRUE(pa.prompt.starts_with(no_cue.prompt.substr(0, 100)));
    EXPECT_GT(pa.prompt.size() - pa.prompt.rfind('?'),
              no_cue.prompt.size() - no_cue.prompt.rfind('?'));
  }
  std::mt19937_64 rng(1);
  EXPECT_TRUE(make_task_prompt(TaskKind::kLines, model.tokenizer(), {800, 0.3, true}, rng)
                  .prompt.ends_with(": REGISTER_CONTENT is <"));
}

TEST(LongRangeTasks, RejectBudgetsTooSmallAndUnknownNames) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = Model::load(path, FileLoad::kMap);
  std::mt19937_64 rng(1);
  try {
    make_task_prompt(TaskKind::kLines, model.tokenizer(), {20, 0.5, true}, rng);
    FAIL() << "a 20-token line task was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot hold the task"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_task_prompt(TaskKind::kLines, model.tokenizer(), {800, 1.5, true}, rng), Error);
  EXPECT_EQ(parse_task_kind("kv"), TaskKind::kKeyValue);
  EXPECT_THROW(parse_task_kind("needle"), Error);
  EXPECT_EQ(first_number(" 12345>\nline"), "12345");
  EXPECT_EQ(first_number("none"), "");
}

// The planted model answers line and passkey prompts built here, as it answers the shared cases.
TEST(LongRangeTasks, ThePlantedModelAnswersGeneratedPrompts) {
  MOA_REQUIRE_ASSET(path, "models/planted-retrieval.gguf");
  const Model model = Model::load(path);
  std::mt19937_64 rng(5);
  for (TaskKind kind : {TaskKind::kLines, TaskKind::kPasskey}) {
    for (double depth : {0.1, 0.6}) {
      const TaskPrompt p = make_task_prompt(kind, model.tokenizer(), {700, depth, true}, rng);
      const std::vector<TokenId> ids = model.tokenizer().encode(p.prompt, true, false);
      KvCache cache(kv_shape(model.config(), p.n_tokens + 8, 1, kernels::KvType::kF16));
      const std::string answer =
          generate(model, cache, 0, {ids, 7, greedy_sampling(), {}, false}, nullptr, 1).text;
      EXPECT_EQ(first_number(answer), p.expected)
          << task_kind_name(kind) << " depth " << depth << ": " << answer;
    }
  }
}

}  // namespace
}  // namespace moa
