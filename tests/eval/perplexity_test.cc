// Perplexity windowing as llama-perplexity does it, checked on small hand-worked cases, and the
// whole measurement on stories260K against a direct computation of the same windows.
#include "eval/perplexity.h"

#include <gtest/gtest.h>

#include <cmath>

#include "kv/kv_cache.h"
#include "support/assets.h"
#include "util/error.h"

namespace moa {
namespace {

TEST(PerplexityChunks, FollowLlamaPerplexity) {
  // 21 tokens at n_ctx 8: 21 / 8 = 2 chunks (tokens 16..20 dropped); first = 4, so logits 4, 5,
  // 6 are scored (predicting tokens 5, 6, 7 of the chunk): 8 - 1 - 4 = 3 per chunk.
  const auto chunks = perplexity_chunks(21, 8);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].start, 0);
  EXPECT_EQ(chunks[1].start, 8);
  EXPECT_EQ(chunks[1].first, 4);
  EXPECT_EQ(chunks[1].n_scored, 3);
  // Odd n_ctx 9: first = 4, scored 9 - 1 - 4 = 4.
  EXPECT_EQ(perplexity_chunks(18, 9)[0].n_scored, 4);
  EXPECT_EQ(perplexity_chunks(512 * 3 + 10, 512).size(), 3u);
  EXPECT_EQ(perplexity_chunks(512 * 3 + 10, 512)[2].n_scored, 255);  // llama.cpp's -c 512
  EXPECT_THROW(perplexity_chunks(15, 8), Error);                     // fewer than 2 x n_ctx tokens
}

TEST(PerplexityChunks, TokenNllIsTheNegativeLogSoftmax) {
  const std::vector<float> logits = {0.0f, std::log(3.0f)};
  EXPECT_NEAR(token_nll(logits, 1), -std::log(0.75), 1e-7);
  EXPECT_NEAR(token_nll(logits, 0), -std::log(0.25), 1e-7);
}

TEST(Perplexity, MatchesADirectComputationOfTheSameWindows) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = Model::load(path, FileLoad::kMap);
  const std::string text =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high. "
      "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do.";
  const std::vector<TokenId> tokens = model.tokenizer().encode(text, true, false);
  const int64_t n_ctx = 32;
  ASSERT_GE(tokens.size(), 64u);
  RetrievalConfig config;
  config.kv_type = kernels::KvType::kF32;
  const EvalMethod dense = parse_eval_method("dense", 1.0, 4);
  int64_t calls = 0;
  const PerplexityResult r =
      measure_perplexity(model, dense, tokens, n_ctx, config, [&](int64_t) { ++calls; });
  const int64_t n_chunks = static_cast<int64_t>(tokens.size()) / n_ctx;
  EXPECT_EQ(r.n_chunks, n_chunks);
  EXPECT_EQ(calls, n_chunks);
  EXPECT_EQ(r.n_scored, n_chunks * 15);
  // The same windows by hand: one whole-chunk forward, BOS in front, logits 16..30 scored.
  double nll = 0.0;
  for (int64_t c = 0; c < n_chunks; ++c) {
    std::vector<TokenId> ids(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
    ids[0] = model.tokenizer().bos();
    KvCache cache(kv_shape(model.config(), n_ctx, 1, kernels::KvType::kF32));
    const Logits logits = forward_tokens(model, cache, 0, ids, LogitsMode::kAll, 1);
    for (int64_t p = 16; p <= 30; ++p) nll += token_nll(logits.row(p), ids[p + 1]);
  }
  EXPECT_NEAR(r.ppl, std::exp(nll / static_cast<double>(n_chunks * 15)), 1e-4 * r.ppl);
  EXPECT_GT(r.ppl, 1.0);
  EXPECT_LT(r.ppl, 100.0);  // a trained model on its own kind of text
  EXPECT_EQ(r.running_ppl.size(), static_cast<size_t>(n_chunks));
  EXPECT_DOUBLE_EQ(r.running_ppl.back(), r.ppl);
}

}  // namespace
}  // namespace moa
