// The forward pass over Q8_0 caches on stories260K (head_dim 8: one scale per K/V row): logits
// stay close to the F16 cache's (the tolerance below is the one docs/dense-engine.md quotes),
// and every attention method (dense, StreamingLLM plan, H2O) prefills and decodes with one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "engine/forward.h"
#include "kv/attention_method.h"
#include "kv/static_kv_cache.h"
#include "support/assets.h"
#include "support/test_inputs.h"

namespace moa {
namespace {

using test::kThreads;
// Max |logit difference| / max |F16 logit| over every step: Q8_0 keys and values carry up to
// 1/254 of each row's largest value as rounding error (one scale per row of 8 here); measured
// 0.054 dense, 0.055 streaming, 0.072 H2O (whose evictions follow the rounded scores).
constexpr double kRelativeTolerance = 0.1;

struct Run {
  std::vector<std::vector<float>> logits;  // per step: the prompt's last, then each decode step
};

// Prompt, then `tokens` fed one at a time (the same tokens for every cache, so steps align).
Run run_cache(const Model& model, AttentionCache& cache, std::span<const TokenId> prompt,
              std::span<const TokenId> tokens) {
  Run run;
  run.logits.push_back(forward_tokens(model, cache, 0, prompt, LogitsMode::kLast, kThreads).data);
  for (const TokenId& t : tokens)
    run.logits.push_back(
        forward_tokens(model, cache, 0, std::span(&t, 1), LogitsMode::kLast, kThreads).data);
  return run;
}

std::unique_ptr<AttentionCache> cache_for(const Model& model, const AttentionMethod& m,
                                          int64_t n_ctx, kernels::KvType type) {
  const ModelIdentity id = identity_of(model.config(), model.file().metadata_hash());
  return make_attention_cache(kv_shape(model.config(), n_ctx, 1, type), m,
                              method_plan(m, id, n_ctx), kDefaultRingChunk);
}

// Relative max difference and the fraction of steps whose greedy token agrees.
void expect_close(const Run& q8, const Run& f16, const char* what) {
  double diff = 0.0, scale = 1.0;
  int agree = 0;
  for (size_t s = 0; s < f16.logits.size(); ++s) {
    const auto& a = q8.logits[s];
    const auto& b = f16.logits[s];
    for (size_t i = 0; i < b.size(); ++i) {
      diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
      scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
    }
    agree += std::max_element(a.begin(), a.end()) - a.begin() ==
             std::max_element(b.begin(), b.end()) - b.begin();
  }
  EXPECT_LE(diff / scale, kRelativeTolerance) << what;
  EXPECT_GT(diff, 0.0) << what << ": the Q8_0 cache really rounds";
  EXPECT_GE(agree, static_cast<int>(f16.logits.size()) * 9 / 10) << what;
}

TEST(KvQuantForward, Stories260KEveryMethodStaysCloseToItsF16Cache) {
  MOA_REQUIRE_ASSET(model_path, "models/stories260K.gguf");
  const Model model = Model::load(model_path);
  const std::vector<TokenId> prompt =
      model.tokenizer().encode("Once upon a time, there was a little dog", true, false);
  std::vector<TokenId> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back(static_cast<TokenId>((i * 37 + 11) % 512));
  const int64_t n_ctx = static_cast<int64_t>(prompt.size() + tokens.size());
  const AttentionMethod methods[] = {{AttentionKind::kDense, "", 1.0, kDefaultSinks},
                                     {AttentionKind::kStreaming, "", 0.5, 4},
                                     {AttentionKind::kH2o, "", 0.5, kDefaultSinks}};
  for (const AttentionMethod& m : methods) {
    auto q8 = cache_for(model, m, n_ctx, kernels::KvType::kQ8_0);
    auto f16 = cache_for(model, m, n_ctx, kernels::KvType::kF16);
    EXPECT_LT(q8->bytes(), f16->bytes());
    expect_close(run_cache(model, *q8, prompt, tokens), run_cache(model, *f16, prompt, tokens),
                 attention_kind_name(m.kind).data());
  }
}

}  // namespace
}  // namespace moa
