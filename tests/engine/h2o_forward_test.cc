// The forward pass through the H2O cache on random models: with a budget covering the whole
// context it is the dense model; with a small budget the prompt is still attended densely (H2O
// prefill), decoding keeps exactly `budget` keys per head, and sequences of a batch stay
// independent.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "engine/forward.h"
#include "engine/random_model.h"
#include "kv/h2o_kv_cache.h"
#include "kv/kv_cache.h"
#include "support/test_inputs.h"

namespace moa {
namespace {

using test::kThreads;
using test::max_abs_diff;
using test::some_tokens;

Model random_model() {
  RandomModelSpec spec;
  spec.n_layer = 2;
  spec.n_head = 4;
  spec.n_head_kv = 2;
  return Model::from_file(gguf::GgufFile::parse(build_random_model(spec).serialize(), "random"));
}

H2oKvCache h2o_cache(const Model& model, int64_t n_ctx, int64_t budget, int n_seq = 1) {
  return H2oKvCache(kv_shape(model.config(), n_ctx, n_seq, kernels::KvType::kF32), budget);
}

TEST(H2oForward, FullBudgetIsTheDenseModel) {
  const Model model = random_model();
  const std::vector<TokenId> tokens = some_tokens(30, model.config().n_vocab);
  KvCache dense(kv_shape(model.config(), 64, 1, kernels::KvType::kF32));
  H2oKvCache h2o = h2o_cache(model, 64, 64);
  auto expect_same_logits = [&](size_t first, size_t n) {
    const auto chunk = std::span(tokens).subspan(first, n);
    const Logits a = forward_tokens(model, dense, 0, chunk, LogitsMode::kAll, kThreads);
    const Logits b = forward_tokens(model, h2o, 0, chunk, LogitsMode::kAll, kThreads);
    EXPECT_LE(max_abs_diff(a.data, b.data), 1e-4) << "at token " << first;
  };
  expect_same_logits(0, 20);
  for (size_t i = 20; i < tokens.size(); ++i) expect_same_logits(i, 1);
  EXPECT_EQ(h2o.length(0), 30);
}

TEST(H2oForward, PrefillIsDenseThenDecodingKeepsTheBudget) {
  const Model model = random_model();
  const std::vector<TokenId> prompt = some_tokens(40, model.config().n_vocab);
  KvCache dense(kv_shape(model.config(), 64, 1, kernels::KvType::kF32));
  H2oKvCache h2o = h2o_cache(model, 64, 16);
  const Logits a = forward_tokens(model, dense, 0, prompt, LogitsMode::kAll, kThreads);
  const Logits b = forward_tokens(model, h2o, 0, prompt, LogitsMode::kAll, kThreads);
  EXPECT_LE(max_abs_diff(a.data, b.data), 1e-4);
  for (int64_t step = 0; step < 10; ++step) {
    const TokenId next = static_cast<TokenId>(50 + step);
    const Logits logits =
        forward_tokens(model, h2o, 0, std::span(&next, 1), LogitsMode::kLast, kThreads);
    for (float x : logits.row(0)) ASSERT_TRUE(std::isfinite(x));
  }
  EXPECT_EQ(h2o.length(0), 50);
  for (int64_t layer = 0; layer < 2; ++layer) {
    for (int64_t g = 0; g < 2; ++g) {
      const auto kept = h2o.positions(layer, 0, g);
      ASSERT_EQ(kept.size(), 16u);
      for (int64_t p = 42; p < 50; ++p) {  // the recent window
        EXPECT_NE(std::find(kept.begin(), kept.end(), p), kept.end()) << p;
      }
    }
  }
}

TEST(H2oForward, BatchDecodeEqualsSingleSequenceDecode) {
  const Model model = random_model();
  const int64_t n_vocab = model.config().n_vocab;
  const std::vector<std::vector<TokenId>> prompts = {some_tokens(19, n_vocab, 1),
                                                     some_tokens(5, n_vocab, 2)};
  H2oKvCache batch = h2o_cache(model, 32, 8, 2);
  std::vector<Logits> single;
  for (int s = 0; s < 2; ++s) {
    const auto& prompt = prompts[static_cast<size_t>(s)];
    forward_tokens(model, batch, s, prompt, LogitsMode::kLast, kThreads);
    H2oKvCache own = h2o_cache(model, 32, 8);
    forward_tokens(model, own, 0, prompt, LogitsMode::kLast, kThreads);
    const TokenId next = static_cast<TokenId>(100 + s);
    single.push_back(
        forward_tokens(model, own, 0, std::span(&next, 1), LogitsMode::kLast, kThreads));
  }
  const std::vector<int> seqs = {0, 1};
  const std::vector<TokenId> next = {100, 101};
  const Logits logits = decode_tokens(model, batch, seqs, next, kThreads);
  for (int s = 0; s < 2; ++s) {
    EXPECT_LE(max_abs_diff(logits.row(s), single[static_cast<size_t>(s)].row(0)), 1e-4) << s;
  }
}

}  // namespace
}  // namespace moa
