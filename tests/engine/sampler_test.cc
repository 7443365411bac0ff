// Sampling (llama.cpp semantics), stop strings and chat templates.
#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "engine/chat_template.h"
#include "util/error.h"
#include "util/input_error.h"

namespace moa {
namespace {

TEST(Sampler, GreedyPicksTheLargestLogit) {
  Sampler sampler(greedy_sampling());
  const std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.9f};
  EXPECT_EQ(sampler.sample(logits, {}), 1);
}

TEST(Sampler, RepeatPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  std::vector<float> logits = {2.0f, -1.0f, 3.0f, 1.0f};
  const std::vector<TokenId> history = {0, 1, 0, 3};
  apply_repeat_penalty(logits, history, 3, 2.0f);  // last 3: {1, 0, 3}
  EXPECT_FLOAT_EQ(logits[0], 1.0f);
  EXPECT_FLOAT_EQ(logits[1], -2.0f);
  EXPECT_FLOAT_EQ(logits[2], 3.0f);
  EXPECT_FLOAT_EQ(logits[3], 0.5f);
  // Token 0's logit 3 becomes 0.75, so greedy picks token 2.
  SamplingParams p = greedy_sampling();
  p.repeat_penalty = 4.0f;
  Sampler sampler(p);
  const std::vector<float> raw = {3.0f, 0.0f, 1.0f};
  const std::vector<TokenId> seen = {0};
  EXPECT_EQ(sampler.sample(raw, seen), 2);
}

TEST(Sampler, TopKOneIsGreedy) {
  SamplingParams p;
  p.temperature = 5.0f;
  p.top_k = 1;
  Sampler sampler(p);
  const std::vector<float> logits = {0.0f, 0.5f, 0.4f};
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sampler.sample(logits, {}), 1);
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingP) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.min_p = 0.0f;
  p.top_p = 0.7f;  // probs ~ {0.665, 0.245, 0.09}: needs the top two
  Sampler sampler(p);
  const std::vector<float> logits = {2.0f, 1.0f, 0.0f};
  std::map<TokenId, int> counts;
  for (int i = 0; i < 400; ++i) ++counts[sampler.sample(logits, {})];
  EXPECT_EQ(counts[2], 0);
  EXPECT_GT(counts[0], 0);
  EXPECT_GT(counts[1], 0);
}

TEST(Sampler, MinPDropsTokensBelowTheFractionOfTheBest) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.3f;  // exp(-1) = 0.37 survives, exp(-2) = 0.14 does not
  Sampler sampler(p);
  const std::vector<float> logits = {0.0f, -1.0f, -2.0f};
  std::map<TokenId, int> counts;
  for (int i = 0; i < 400; ++i) ++counts[sampler.sample(logits, {})];
  EXPECT_EQ(counts[2], 0);
  EXPECT_GT(counts[1], 0);
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferentTokens) {
  SamplingParams p;
  p.temperature = 1.5f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  const std::vector<float> logits(50, 0.0f);
  auto run = [&](uint64_t seed) {
    p.seed = seed;
    Sampler sampler(p);
    std::vector<TokenId> ids;
    for (int i = 0; i < 32; ++i) ids.push_back(sampler.sample(logits, {}));
    return ids;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST(Sampler, RejectsInvalidValues) {
  // The error names the field (the CLI turns it into the flag) and the value.
  auto rejects = [](auto change, const char* field, const char* value) {
    SamplingParams p;
    change(p);
    try {
      validate_sampling(p);
      ADD_FAILURE() << "accepted an invalid " << field;
    } catch (const InputError& e) {
      EXPECT_EQ(e.field(), field);
      EXPECT_NE(std::string(e.what()).find(value), std::string::npos) << e.what();
    }
  };
  rejects([](SamplingParams& p) { p.temperature = -1.0f; }, "temperature", "-1");
  rejects([](SamplingParams& p) { p.top_k = -3; }, "top-k", "-3");
  rejects([](SamplingParams& p) { p.top_p = 1.5f; }, "top-p", "1.5");
  rejects([](SamplingParams& p) { p.min_p = -0.1f; }, "min-p", "-0.1");
  rejects([](SamplingParams& p) { p.repeat_penalty = 0.0f; }, "repeat penalty", "0");
  rejects([](SamplingParams& p) { p.repeat_last_n = -2; }, "repeat window", "-2");
  EXPECT_THROW(Sampler{SamplingParams{.temperature = -2.0f}}, Error);
}

TEST(StopMatcher, HoldsBackPossibleStopPrefixesAndCutsAtTheStop) {
  StopMatcher stop({"END", "\n\n"});
  EXPECT_EQ(stop.push("hello E"), "hello ");
  EXPECT_EQ(stop.push("N"), "");
  EXPECT_EQ(stop.push("x"), "ENx");
  EXPECT_FALSE(stop.stopped());
  EXPECT_EQ(stop.push(" bye\n"), " bye");
  EXPECT_EQ(stop.push("\nmore"), "");
  EXPECT_TRUE(stop.stopped());
  EXPECT_EQ(stop.push("later"), "");
}

TEST(StopMatcher, FlushReturnsHeldText) {
  StopMatcher stop({"stop"});
  EXPECT_EQ(stop.push("a st"), "a ");
  EXPECT_EQ(stop.flush(), "st");
  StopMatcher none({});
  EXPECT_EQ(none.push("anything"), "anything");
}

TEST(ChatTemplate, FormatsTheCommonFamilies) {
  EXPECT_EQ(apply_chat_template("raw", "", "hi"), "hi");
  EXPECT_EQ(apply_chat_template("llama2", "be brief", "hi"),
            "[INST] <<SYS>>\nbe brief\n<</SYS>>\n\nhi [/INST]");
  EXPECT_EQ(apply_chat_template("llama2", "", "hi"), "[INST] hi [/INST]");
  EXPECT_EQ(apply_chat_template("chatml", "sys", "hi"),
            "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(apply_chat_template("llama3", "", "hi"),
            "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_THROW(apply_chat_template("vicuna", "", "hi"), Error);
}

}  // namespace
}  // namespace moa
