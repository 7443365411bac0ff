// The forward pass through the sparse engine: a random model generating with the static ring
// cache of a plan gives the same logits at every step (chunked prefill, then decode across
// the rings' wrap-around) as the dense cache running the same plan's masks, and a dense plan
// on the dense cache gives the dense logits.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/forward.h"
#include "engine/random_model.h"
#include "gguf/gguf_file.h"
#include "kv/kv_cache.h"
#include "kv/static_kv_cache.h"
#include "plan/plan.h"
#include "util/error.h"

namespace moa {
namespace {

Model small_model() {
  RandomModelSpec spec;
  spec.n_layer = 2;
  spec.n_head = 4;
  spec.n_head_kv = 2;
  spec.n_embd = 64;
  return Model::from_file(gguf::GgufFile::parse(build_random_model(spec).serialize(), "random"));
}

SparsePlan mixed_plan(const Model& model, int64_t sinks) {
  SparsePlan plan = uniform_plan(identity_of(model.config(), ""), 40, sinks);
  plan.method = "moa";
  plan.rules = {{{10, 0}, {0, 0.25}}, {{0, 1}, {30, 0.125}}};
  return plan;
}

std::vector<TokenId> tokens(int64_t n) {
  std::vector<TokenId> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back(static_cast<TokenId>(3 + (i * 37) % 300));
  return ids;
}

double max_diff(const Logits& a, const Logits& b) {
  double worst = 0.0;
  for (size_t i = 0; i < a.data.size(); ++i)
    worst = std::max(worst, double(std::abs(a.data[i] - b.data[i])));
  return a.data.size() == b.data.size() ? worst : 1e9;
}

// Prefills `prompt` tokens in chunks of `chunk`, then decodes the rest one by one, on both
// caches; returns the largest logit difference over all steps.
double generation_difference(const Model& model, AttentionCache& a, AttentionCache& b,
                             int64_t prompt, int64_t total, int64_t chunk) {
  const std::vector<TokenId> ids = tokens(total);
  double worst = 0.0;
  for (int64_t pos = 0; pos < total;) {
    const int64_t n = pos < prompt ? std::min(chunk, prompt - pos) : 1;
    const std::span<const TokenId> step =
        std::span(ids).subspan(static_cast<size_t>(pos), static_cast<size_t>(n));
    const Logits la = forward_tokens(model, a, 0, step, LogitsMode::kAll, 2);
    const Logits lb = forward_tokens(model, b, 0, step, LogitsMode::kAll, 2);
    worst = std::max(worst, max_diff(la, lb));
    pos += n;
  }
  return worst;
}

TEST(SparseForward, StaticRingCacheMatchesDenseCacheWithTheSamePlan) {
  const Model model = small_model();
  const int64_t total = 330;  // rings of 10..82 slots wrap; 24-token chunks overflow some
  for (int64_t sinks : {0, 4}) {
    const SparsePlan plan = mixed_plan(model, sinks);
    StaticKvCache rings(kv_shape(model.config(), total, 1, kernels::KvType::kF32), plan, 24);
    KvCache dense(kv_shape(model.config(), total, 1, kernels::KvType::kF32));
    dense.use_plan(plan, total);
    EXPECT_LE(generation_difference(model, rings, dense, 100, total, 24), 1e-4)
        << "sinks " << sinks;
    EXPECT_LT(rings.bytes(), dense.bytes());
  }
}

TEST(SparseForward, DensePlanOnTheDenseCacheGivesDenseLogits) {
  const Model model = small_model();
  KvCache plain(kv_shape(model.config(), 200, 1, kernels::KvType::kF32));
  KvCache planned(kv_shape(model.config(), 200, 1, kernels::KvType::kF32));
  planned.use_plan(dense_plan(identity_of(model.config(), "")), 200);
  EXPECT_LE(generation_difference(model, plain, planned, 150, 200, 64), 1e-5);
}

TEST(SparseForward, ANarrowWindowChangesTheLogits) {
  // The masks are really applied: a window of 8 tokens changes logits once the text is longer.
  const Model model = small_model();
  KvCache plain(kv_shape(model.config(), 100, 1, kernels::KvType::kF32));
  KvCache narrow(kv_shape(model.config(), 100, 1, kernels::KvType::kF32));
  narrow.use_plan(uniform_plan(identity_of(model.config(), ""), 8, 0), 100);
  EXPECT_GT(generation_difference(model, plain, narrow, 100, 100, 100), 1e-3);
}

TEST(SparseForward, RejectsChunksLargerThanTheCacheTakes) {
  const Model model = small_model();
  StaticKvCache rings(kv_shape(model.config(), 100, 1, kernels::KvType::kF32), mixed_plan(model, 4),
                      16);
  const std::vector<TokenId> ids = tokens(17);
  EXPECT_THROW(forward_tokens(model, rings, 0, ids, LogitsMode::kLast, 1), Error);
  EXPECT_EQ(rings.length(0), 0);
}

TEST(SparseForward, RejectsAPlanWithTheWrongShape) {
  const Model model = small_model();
  SparsePlan plan = mixed_plan(model, 4);
  plan.rules.pop_back();
  KvCache dense(kv_shape(model.config(), 100, 1, kernels::KvType::kF32));
  EXPECT_THROW(dense.use_plan(plan, 100), Error);
  EXPECT_THROW(StaticKvCache(kv_shape(model.config(), 100, 1, kernels::KvType::kF32), plan, 16),
               Error);
}

}  // namespace
}  // namespace moa
