// Perplexity windowing as llama-perplexity does it, checked on small hand-worked cases, and the
// whole measurement on stories260K against a direct computation of the same windows.
#include "eval/perplexity.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

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

TEST(PerplexityChunks, StrideFollowsLlamaPerplexityV2) {
  // 21 tokens, n_ctx 8, stride 4: ceil((21 - 8) / 4) = 4 windows at 0, 4, 8, 12; each scores
  // logits 8 - 4 - 1 = 3 .. 6, i.e. the window's tokens 4..7 (text tokens 4..19; 20 is left).
  const auto windows = perplexity_chunks(21, 8, 4);
  ASSERT_EQ(windows.size(), 4u);
  for (size_t i = 0; i < windows.size(); ++i) {
    EXPECT_EQ(windows[i].start, static_cast<int64_t>(i) * 4);
    EXPECT_EQ(windows[i].first, 3);
    EXPECT_EQ(windows[i].n_scored, 4);
    EXPECT_FALSE(windows[i].bos_first);  // v2 decodes the text as it is
  }
  // 20 tokens: ceil(12 / 4) = 3; llama.cpp leaves out the window at 12 that ends on the last token.
  EXPECT_EQ(perplexity_chunks(20, 8, 4).size(), 3u);
  // Stride n_ctx / 2 at -c 512 on 1546 tokens: ceil(1034 / 256) = 5 windows of 256 scored, from
  // logit 255 (the default windowing scores 255 from logit 256).
  const auto half = perplexity_chunks(512 * 3 + 10, 512, 256);
  ASSERT_EQ(half.size(), 5u);
  EXPECT_EQ(half[4].start, 1024);
  EXPECT_EQ(half[4].first, 255);
  EXPECT_EQ(half[4].n_scored, 256);
  // Stride 1: one window per token past the first n_ctx, each scoring its last logit only.
  const auto one = perplexity_chunks(20, 8, 1);
  ASSERT_EQ(one.size(), 12u);
  EXPECT_EQ(one[11].first, 6);
  EXPECT_EQ(one[11].n_scored, 1);
  EXPECT_THROW(perplexity_chunks(21, 8, 8), Error);   // would read the logit before the window
  EXPECT_THROW(perplexity_chunks(21, 8, -1), Error);  // llama.cpp: must be greater than zero
  EXPECT_THROW(perplexity_chunks(15, 8, 4), Error);   // fewer than 2 x n_ctx tokens
}

TEST(PerplexityChunks, StridedWindowsScoreEveryTargetOnceAndInOrder) {
  for (const auto& [n_tokens, n_ctx, stride] :
       {std::tuple{21, 8, 4}, {40, 8, 3}, {100, 16, 8}, {64, 32, 31}, {33, 16, 1}}) {
    std::vector<int64_t> targets;  // text index of each scored token (the logit's next token)
    for (const PerplexityChunk& w : perplexity_chunks(n_tokens, n_ctx, stride)) {
      for (int64_t p = w.first; p < w.first + w.n_scored; ++p) targets.push_back(w.start + p + 1);
      EXPECT_LT(w.start + n_ctx, n_tokens);        // every window ends before the last token
      EXPECT_EQ(w.first + w.n_scored, n_ctx - 1);  // the last logit scored is the window's last
    }
    ASSERT_FALSE(targets.empty());
    EXPECT_EQ(targets.front(), n_ctx - stride);  // the first window scores its last S tokens
    for (size_t i = 1; i < targets.size(); ++i) EXPECT_EQ(targets[i], targets[i - 1] + 1);
    EXPECT_GE(targets.back() + stride, n_tokens - 1);  // the next window would reach the last
  }
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
      measure_perplexity(model, dense, tokens, n_ctx, 0, config, [&](int64_t) { ++calls; });
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

TEST(Perplexity, StrideMatchesADirectComputationOfTheOverlappingWindows) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = Model::load(path, FileLoad::kMap);
  const std::string text =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.";
  const std::vector<TokenId> tokens = model.tokenizer().encode(text, true, false);
  const int64_t n_ctx = 16, stride = 8;
  ASSERT_GE(tokens.size(), 32u);
  RetrievalConfig config;
  config.kv_type = kernels::KvType::kF32;
  const EvalMethod dense = parse_eval_method("dense", 1.0, 4);
  const PerplexityResult r = measure_perplexity(model, dense, tokens, n_ctx, stride, config, {});
  const int64_t n_windows = (static_cast<int64_t>(tokens.size()) - n_ctx + stride - 1) / stride;
  EXPECT_EQ(r.n_chunks, n_windows);
  EXPECT_EQ(r.n_scored, n_windows * stride);
  EXPECT_EQ(r.stride, stride);
  // By hand: window w is tokens[8w, 8w + 16) as the text has them (BOS only in window 0, from
  // the tokenizer), logits 7..14 scored against the next token.
  double nll = 0.0;
  for (int64_t w = 0; w < n_windows; ++w) {
    const std::vector<TokenId> ids(tokens.begin() + w * stride,
                                   tokens.begin() + w * stride + n_ctx);
    EXPECT_EQ(ids[0] == model.tokenizer().bos(), w == 0);
    KvCache cache(kv_shape(model.config(), n_ctx, 1, kernels::KvType::kF32));
    const Logits logits = forward_tokens(model, cache, 0, ids, LogitsMode::kAll, 1);
    for (int64_t p = n_ctx - stride - 1; p <= n_ctx - 2; ++p) {
      nll += token_nll(logits.row(p), ids[p + 1]);
    }
  }
  EXPECT_NEAR(r.ppl, std::exp(nll / static_cast<double>(n_windows * stride)), 1e-4 * r.ppl);
  EXPECT_EQ(r.running_ppl.size(), static_cast<size_t>(n_windows));
  EXPECT_DOUBLE_EQ(r.running_ppl.back(), r.ppl);
}

// The first figure llama-perplexity prints ([1]x) over the reference sequence, computed from the
// logits llama.cpp itself produced (models/reference: "Once upon a time" + 16 greedy tokens, all
// 20 positions in one context): moa's first window gives the same PPL in both windowings.
TEST(Perplexity, FirstWindowMatchesLlamaCppLogits) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  MOA_REQUIRE_ASSET(logits_path, "models/reference/stories260K.once_upon_a_time.logits.f32");
  MOA_REQUIRE_ASSET(jsonl_path, "models/reference/stories260K.greedy.jsonl");
  const Model model = Model::load(path, FileLoad::kMap);
  const auto n_vocab = static_cast<size_t>(model.config().n_vocab);
  std::ifstream logits_file(logits_path, std::ios::binary);
  std::vector<float> want(20 * n_vocab);
  logits_file.read(reinterpret_cast<char*>(want.data()),
                   static_cast<std::streamsize>(want.size() * sizeof(float)));
  ASSERT_TRUE(logits_file) << logits_path;
  std::vector<TokenId> seq;
  std::istringstream lines(test::read_file(jsonl_path));
  for (std::string line; std::getline(lines, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    if (j.at("prompt") != "Once upon a time") continue;
    seq = j.at("prompt_ids").get<std::vector<TokenId>>();
    const auto greedy = j.at("greedy_ids").get<std::vector<TokenId>>();
    seq.insert(seq.end(), greedy.begin(), greedy.begin() + std::min<size_t>(16, greedy.size()));
  }
  ASSERT_EQ(seq.size(), 21u);  // BOS + 4 prompt tokens + 16 greedy: logits rows 0..19
  const auto reference_ppl = [&](int64_t first_row, int64_t last_row) {
    double nll = 0.0;
    for (int64_t r = first_row; r <= last_row; ++r) {
      nll += token_nll(std::span(want).subspan(static_cast<size_t>(r) * n_vocab, n_vocab),
                       seq[static_cast<size_t>(r) + 1]);
    }
    return std::exp(nll / static_cast<double>(last_row - first_row + 1));
  };
  RetrievalConfig config;
  config.kv_type = kernels::KvType::kF32;
  const EvalMethod dense = parse_eval_method("dense", 1.0, 4);
  // -c 10: chunk 0 is tokens 0..9 (BOS already first), logits 5..8 scored.
  const PerplexityResult chunks = measure_perplexity(model, dense, seq, 10, 0, config, {});
  EXPECT_NEAR(chunks.running_ppl.front(), reference_ppl(5, 8), 1e-4 * chunks.running_ppl.front());
  // -c 10 --ppl-stride 9: window 0 is tokens 0..9, logits 0..8 scored.
  const PerplexityResult strided = measure_perplexity(model, dense, seq, 10, 9, config, {});
  EXPECT_EQ(strided.n_chunks, 2);
  EXPECT_NEAR(strided.running_ppl.front(), reference_ppl(0, 8), 1e-4 * strided.running_ppl.front());
}

}  // namespace
}  // namespace moa
