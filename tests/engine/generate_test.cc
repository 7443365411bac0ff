// The generation API: greedy output equals a hand-written argmax loop over forward(); chunked
// prefill equals one pass; each stop condition (token budget, stop string, end of line, the
// caller, a full context) ends generation with its reason and the text streamed so far.
#include "engine/generate.h"

#include <gtest/gtest.h>

#include "engine/random_model.h"
#include "kv/kv_cache.h"
#include "support/assets.h"
#include "util/error.h"

namespace moa {
namespace {

Model stories(const std::string& path) { return Model::load(path, FileLoad::kMap); }

KvCache cache_for(const Model& model, int64_t n_ctx) {
  return KvCache(kv_shape(model.config(), n_ctx, 1, kernels::KvType::kF32));
}

TEST(Generate, GreedyEqualsAnArgmaxLoopOverForward) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = stories(path);
  const std::vector<TokenId> prompt = model.tokenizer().encode("Once upon a time", true, false);
  KvCache cache = cache_for(model, 128);
  GenerateRequest request{prompt, 24, greedy_sampling(), {}, false};
  std::string streamed;
  const GenerateResult result = generate(
      model, cache, 0, request,
      [&](std::string_view text) {
        streamed += text;
        return true;
      },
      1);
  EXPECT_EQ(result.stop, StopReason::kTokenBudget);
  ASSERT_EQ(result.tokens.size(), 24u);
  EXPECT_EQ(result.decoded_tokens, 23);
  EXPECT_EQ(streamed, result.text);
  EXPECT_EQ(result.text, model.tokenizer().decode(result.tokens));

  KvCache manual = cache_for(model, 128);
  Logits logits = forward_tokens(model, manual, 0, prompt, LogitsMode::kLast, 1);
  for (size_t i = 0; i < result.tokens.size(); ++i) {
    const TokenId next = argmax(logits.row(0));
    ASSERT_EQ(next, result.tokens[i]) << "step " << i;
    logits = forward_tokens(model, manual, 0, std::span(&next, 1), LogitsMode::kLast, 1);
  }
}

TEST(Generate, ChunkedPrefillEqualsOnePass) {
  RandomModelSpec spec;
  spec.n_ctx = 2048;
  const std::string path = test::temp_dir() + "/random.gguf";
  write_random_model(spec, path);
  const Model model = Model::load(path, FileLoad::kMap);
  std::vector<TokenId> tokens;
  for (int i = 0; i < 1200; ++i) tokens.push_back(3 + (i * 37) % 300);
  KvCache chunked = cache_for(model, 1300);
  const Logits a = prefill(model, chunked, 0, tokens, 1);
  EXPECT_EQ(chunked.length(0), 1200);
  EXPECT_EQ(prefill_chunk_size(chunked), kPrefillChunk);
  KvCache whole = cache_for(model, 1300);
  const Logits b = forward_tokens(model, whole, 0, tokens, LogitsMode::kLast, 1);
  ASSERT_EQ(a.data.size(), b.data.size());
  for (size_t i = 0; i < a.data.size(); ++i) EXPECT_NEAR(a.data[i], b.data[i], 1e-4) << i;
}

TEST(Generate, StopsAtStopStringsNewlinesTheCallerAndAFullContext) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = stories(path);
  const std::vector<TokenId> prompt = model.tokenizer().encode("Once upon a time", true, false);
  {  // ", there was a little girl named Lily." -> stop before "Lily"
    KvCache cache = cache_for(model, 128);
    const GenerateResult r =
        generate(model, cache, 0, {prompt, 64, greedy_sampling(), {"Lily"}, false}, nullptr, 1);
    EXPECT_EQ(r.stop, StopReason::kStopString);
    EXPECT_EQ(r.text, ", there was a little girl named ");
  }
  {  // stories260K's greedy text reaches a newline within 64 tokens
    KvCache cache = cache_for(model, 128);
    const GenerateResult r =
        generate(model, cache, 0, {prompt, 64, greedy_sampling(), {}, true}, nullptr, 1);
    EXPECT_EQ(r.stop, StopReason::kStopString);
    EXPECT_EQ(r.text.find('\n'), std::string::npos);
    EXPECT_NE(r.text.find("too high."), std::string::npos) << r.text;
  }
  {
    KvCache cache = cache_for(model, 128);
    int calls = 0;
    const GenerateResult r = generate(
        model, cache, 0, {prompt, 64, greedy_sampling(), {}, false},
        [&](std::string_view) { return ++calls < 3; }, 1);
    EXPECT_EQ(r.stop, StopReason::kCaller);
    EXPECT_EQ(calls, 3);
    EXPECT_EQ(r.tokens.size(), 3u);
  }
  {
    KvCache cache = cache_for(model, 10);  // 5 prompt tokens + 5
    const GenerateResult r =
        generate(model, cache, 0, {prompt, 64, greedy_sampling(), {}, false}, nullptr, 1);
    EXPECT_EQ(r.stop, StopReason::kContextFull);
    EXPECT_EQ(r.tokens.size(), 6u);  // the last sampled token needs no cache slot
  }
}

TEST(Generate, RejectsEmptyPromptsBadBudgetsAndUsedSequences) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = stories(path);
  const std::vector<TokenId> prompt = model.tokenizer().encode("Once", true, false);
  KvCache cache = cache_for(model, 32);
  EXPECT_THROW(generate(model, cache, 0, {{}, 4, greedy_sampling(), {}, false}, nullptr, 1), Error);
  EXPECT_THROW(generate(model, cache, 0, {prompt, 0, greedy_sampling(), {}, false}, nullptr, 1),
               Error);
  generate(model, cache, 0, {prompt, 2, greedy_sampling(), {}, false}, nullptr, 1);
  EXPECT_THROW(generate(model, cache, 0, {prompt, 2, greedy_sampling(), {}, false}, nullptr, 1),
               Error);
  KvCache small = cache_for(model, 1);
  EXPECT_THROW(generate(model, small, 0, {prompt, 2, greedy_sampling(), {}, false}, nullptr, 1),
               Error);
}

}  // namespace
}  // namespace moa
