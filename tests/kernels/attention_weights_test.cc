// Tiled attention probabilities (what H2O accumulates) against the double-precision reference
// over GQA groups, F32/F16 keys, chunked and single-token queries, band masks and shapes that
// are not multiples of the tiles; plus the row-sum property and the known-lse path.
#include "kernels/attention_weights.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "gguf/quant.h"
#include "kernels/attention_weights_reference.h"
#include "kernels/random_data.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

using testing::random_floats;

using Case = testing::AttentionCase;

struct Inputs {
  AttentionShape shape;
  std::vector<float> q, k32;
  std::vector<uint16_t> k16;
  KvView kv;
  int64_t stride = 0;  // score stride, a little larger than n_keys
};

Inputs make_inputs(const Case& c) {
  Inputs in;
  in.shape = {c.n_head, c.n_head_kv, c.head_dim, 1.0f / std::sqrt(static_cast<float>(c.head_dim))};
  in.q = random_floats(c.n_query * c.n_head * c.head_dim, 31, 2.0f);
  const int64_t capacity = c.n_keys + 5;
  in.k32 = random_floats(c.n_head_kv * capacity * c.head_dim, 32, 2.0f);
  in.kv = {c.kv_type, in.k32.data(), nullptr, capacity * c.head_dim, c.n_keys};
  if (c.kv_type == KvType::kF16) {
    for (float f : in.k32) in.k16.push_back(gguf::fp32_to_fp16(f));
    in.kv.k = in.k16.data();
  }
  in.stride = c.n_keys + 3;
  return in;
}

// Accumulates onto a non-zero start so the test also checks that scores are added, not set.
void expect_matches_reference(const Case& c) {
  Inputs in = make_inputs(c);
  const size_t n_scores = static_cast<size_t>(c.n_head_kv * in.stride);
  std::vector<float> got(n_scores, 0.5f);
  std::vector<double> want(n_scores, 0.5);
  accumulate_attention_weights(in.shape, in.q.data(), c.n_query, c.q_pos0, in.kv, c.masks, nullptr,
                               got.data(), in.stride, c.threads);
  reference::accumulate_attention_weights(in.shape, in.q.data(), c.n_query, c.q_pos0, in.kv,
                                          c.masks, want.data(), in.stride);
  for (size_t i = 0; i < n_scores; ++i) {
    ASSERT_NEAR(got[i], want[i], 1e-4 * (1.0 + std::abs(want[i]))) << "score index " << i;
  }
}

TEST(AttentionWeights, PrefillMatchesReferenceOverGqaAndTileEdges) {
  expect_matches_reference({4, 2, 16, 100, 0, 100, {}});
  expect_matches_reference({8, 2, 12, 64, 0, 64, {}});
  expect_matches_reference({3, 3, 8, 33, 0, 33, {}, KvType::kF32, 1});
  expect_matches_reference({6, 1, 20, 130, 0, 130, {}});
}

TEST(AttentionWeights, ChunkAfterCachedKeysMatchesReference) {
  expect_matches_reference({4, 2, 16, 37, 90, 127, {}});
  expect_matches_reference({4, 4, 8, 5, 200, 205, {}, KvType::kF16});
}

TEST(AttentionWeights, SingleQueryDecodeMatchesReference) {
  expect_matches_reference({4, 2, 16, 1, 299, 300, {}});
  expect_matches_reference({2, 1, 32, 1, 0, 1, {}});
  expect_matches_reference({8, 4, 16, 1, 70, 71, {}, KvType::kF16, 1});
}

TEST(AttentionWeights, BandMasksMatchReference) {
  const std::vector<BandMask> masks = {{4, 10}, {0, 1}, {70, 3}, {2, INT64_MAX}};
  expect_matches_reference({8, 4, 16, 150, 0, 150, masks});
  expect_matches_reference({8, 4, 16, 1, 149, 150, masks});
  expect_matches_reference({8, 4, 16, 20, 130, 150, masks, KvType::kF16});
}

TEST(AttentionWeights, EveryRowContributesProbabilityOne) {
  const Case c{6, 2, 16, 77, 0, 77, {}};
  Inputs in = make_inputs(c);
  std::vector<float> scores(static_cast<size_t>(c.n_head_kv * in.stride), 0.0f);
  accumulate_attention_weights(in.shape, in.q.data(), c.n_query, c.q_pos0, in.kv, {}, nullptr,
                               scores.data(), in.stride, 2);
  for (int64_t g = 0; g < c.n_head_kv; ++g) {
    double sum = 0.0;
    for (int64_t j = 0; j < c.n_keys; ++j) sum += scores[static_cast<size_t>(g * in.stride + j)];
    EXPECT_NEAR(sum, static_cast<double>(c.n_query * c.n_head / c.n_head_kv), 1e-3);
  }
}

TEST(AttentionWeights, KnownLseGivesTheSameWeights) {
  const Case c{4, 2, 16, 45, 20, 65, {}};
  Inputs in = make_inputs(c);
  std::vector<float> lse(static_cast<size_t>(c.n_query * c.n_head));
  attention_row_lse(in.shape, in.q.data(), c.n_query, c.q_pos0, in.kv, {}, lse.data(), 2);
  std::vector<double> want_lse(lse.size());
  reference::attention_row_lse(in.shape, in.q.data(), c.n_query, c.q_pos0, in.kv, {},
                               want_lse.data());
  for (size_t i = 0; i < lse.size(); ++i) ASSERT_NEAR(lse[i], want_lse[i], 1e-4) << i;
  std::vector<float> given(static_cast<size_t>(c.n_head_kv * in.stride), 0.0f);
  std::vector<float> recomputed = given;
  accumulate_attention_weights(in.shape, in.q.data(), c.n_query, c.q_pos0, in.kv, {}, lse.data(),
                               given.data(), in.stride, 2);
  accumulate_attention_weights(in.shape, in.q.data(), c.n_query, c.q_pos0, in.kv, {}, nullptr,
                               recomputed.data(), in.stride, 1);
  for (size_t i = 0; i < given.size(); ++i) ASSERT_NEAR(given[i], recomputed[i], 1e-5) << i;
}

TEST(AttentionWeights, RowsThatSeeNoKeyAddNothing) {
  // Queries at 40.. with a span of 3 over keys 0..9 and no sinks see nothing.
  const Case c{2, 1, 8, 4, 40, 10, {{0, 3}}};
  Inputs in = make_inputs(c);
  std::vector<float> scores(static_cast<size_t>(in.stride), 0.0f);
  accumulate_attention_weights(in.shape, in.q.data(), c.n_query, c.q_pos0, in.kv, c.masks, nullptr,
                               scores.data(), in.stride, 2);
  for (float s : scores) EXPECT_EQ(s, 0.0f);
  std::vector<float> lse(static_cast<size_t>(c.n_query * c.n_head));
  attention_row_lse(in.shape, in.q.data(), c.n_query, c.q_pos0, in.kv, c.masks, lse.data(), 1);
  for (float x : lse) EXPECT_TRUE(std::isinf(x) && x < 0.0f);
}

TEST(AttentionWeights, RejectsBadShapes) {
  const Case c{4, 3, 8, 2, 0, 2, {}};
  Inputs in = make_inputs(c);
  std::vector<float> scores(64, 0.0f);
  EXPECT_THROW(accumulate_attention_weights(in.shape, in.q.data(), 2, 0, in.kv, {}, nullptr,
                                            scores.data(), in.stride, 1),
               Error);
  in.shape.n_head_kv = 2;
  EXPECT_THROW(accumulate_attention_weights(in.shape, in.q.data(), 2, 0, in.kv, {}, nullptr,
                                            scores.data(), 1, 1),
               Error);
}

}  // namespace
}  // namespace moa::kernels
