// Attention accumulated over key runs (segments at arbitrary positions, several per KV head,
// over several calls) against the naive masked reference on the whole key array, for many
// elastic rules (alpha, beta), sink counts and lengths, including spans below the sink count,
// spans beyond N, N below one tile and N that is not a multiple of the tile.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/random_data.h"
#include "kernels/reference.h"
#include "plan/plan.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

using testing::max_abs_diff;
using testing::random_floats;

constexpr int64_t kHeadDim = 16;

struct Problem {
  AttentionShape shape{4, 2, kHeadDim, 0.25f};
  int64_t n = 0;                // keys at positions 0 .. n-1
  std::vector<float> k, v;      // [kv_head][n][head_dim], as a KvView reads them
  std::vector<BandMask> masks;  // per KV head
};

Problem make_problem(int64_t n, std::vector<BandMask> masks, uint32_t seed) {
  Problem p;
  p.n = n;
  p.shape.n_head_kv = static_cast<int64_t>(masks.size());
  p.shape.n_head = 2 * p.shape.n_head_kv;
  p.k = random_floats(p.shape.n_head_kv * n * kHeadDim, seed, 2.0f);
  p.v = random_floats(p.shape.n_head_kv * n * kHeadDim, seed + 1);
  p.masks = std::move(masks);
  return p;
}

KvView whole_view(const Problem& p) {
  return {KvType::kF32, p.k.data(), p.v.data(), p.n * kHeadDim, p.n};
}

// Each KV head's keys cut at random points into up to `pieces` runs, listed in shuffled order.
std::vector<KeyRun> cut_into_runs(const Problem& p, int pieces, std::mt19937& rng) {
  std::vector<KeyRun> runs;
  for (int64_t g = 0; g < p.shape.n_head_kv; ++g) {
    std::vector<int64_t> cuts = {0, p.n};
    std::uniform_int_distribution<int64_t> at(0, p.n);
    for (int i = 1; i < pieces; ++i) cuts.push_back(at(rng));
    std::sort(cuts.begin(), cuts.end());
    for (size_t i = 0; i + 1 < cuts.size(); ++i) {
      const int64_t offset = (g * p.n + cuts[i]) * kHeadDim;
      runs.push_back({g, p.k.data() + offset, p.v.data() + offset, cuts[i], cuts[i + 1] - cuts[i]});
    }
  }
  std::shuffle(runs.begin(), runs.end(), rng);
  return runs;
}

// Accumulates the runs in `calls` separate calls and compares with the reference.
void expect_runs_match_reference(const Problem& p, int64_t n_query, int pieces, int calls,
                                 uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t q_pos0 = p.n - n_query;
  const auto q = random_floats(n_query * p.shape.n_head * kHeadDim, seed + 7, 2.0f);
  const std::vector<KeyRun> runs = cut_into_runs(p, pieces, rng);
  AttentionState state;
  state.reset(n_query, p.shape.n_head, kHeadDim);
  for (int c = 0; c < calls; ++c) {
    const size_t begin = runs.size() * static_cast<size_t>(c) / static_cast<size_t>(calls);
    const size_t end = runs.size() * static_cast<size_t>(c + 1) / static_cast<size_t>(calls);
    attention_accumulate(p.shape, q.data(), n_query, q_pos0, KvType::kF32,
                         std::span(runs).subspan(begin, end - begin), p.masks, state, 2);
  }
  std::vector<float> got(q.size(), 99.0f), want(q.size());
  attention_finish(state, got.data());
  reference::attention(p.shape, q.data(), n_query, q_pos0, whole_view(p), p.masks, want.data());
  EXPECT_LE(max_abs_diff(got, want), 2e-5)
      << "n " << p.n << " queries " << n_query << " sinks " << p.masks[0].sinks << " spans "
      << p.masks[0].span << "/" << p.masks.back().span << " pieces " << pieces;
}

TEST(AttentionSegments, ElasticRulesOverSplitRunsMatchReference) {
  const ElasticRule rules[] = {{0, 0.25}, {16, 0.5}, {1, 0}, {40, 0}, {0, 1}, {300, 0.125}};
  uint32_t seed = 1;
  for (int64_t sinks : {0, 4, 64}) {
    for (int64_t n : {1, 5, 64, 65, 257}) {
      for (size_t r = 0; r < std::size(rules); ++r) {
        // Two KV heads with different rules: one launch serves different spans.
        const ElasticRule& other = rules[(r + 2) % std::size(rules)];
        const Problem p =
            make_problem(n, {{sinks, rules[r].span(n)}, {sinks, other.span(n)}}, seed);
        expect_runs_match_reference(p, n, 3, 1, seed++);                         // prefill
        expect_runs_match_reference(p, std::min<int64_t>(n, 37), 2, 2, seed++);  // a chunk
        expect_runs_match_reference(p, 1, 3, 2, seed++);                         // decode
      }
    }
  }
}

TEST(AttentionSegments, ManyPiecesOverSeveralCallsMatchReference) {
  const Problem p = make_problem(700, {{4, 100}, {64, 33}, {0, INT64_MAX}, {10, 3}}, 5);
  for (int64_t n_query : {700, 130, 1}) {
    expect_runs_match_reference(p, n_query, 3, 3, 11);
    expect_runs_match_reference(p, n_query, 6, 2, 12);
  }
}

TEST(AttentionSegments, ViewSegmentsAtAnOffsetMatchReference) {
  // Keys 0..99 from one KvView and 100..249 from another, accumulated in two calls.
  const Problem p = make_problem(250, {{4, 60}, {0, 200}}, 9);
  const int64_t n_query = 80, q_pos0 = 170;
  const auto q = random_floats(n_query * p.shape.n_head * kHeadDim, 3, 2.0f);
  // Copy the two position ranges into separate buffers with their own head stride.
  auto slice = [&](const std::vector<float>& src, int64_t from, int64_t count) {
    std::vector<float> dst;
    for (int64_t g = 0; g < p.shape.n_head_kv; ++g) {
      const auto* begin = src.data() + (g * p.n + from) * kHeadDim;
      dst.insert(dst.end(), begin, begin + count * kHeadDim);
    }
    return dst;
  };
  const auto k1 = slice(p.k, 0, 100), v1 = slice(p.v, 0, 100);
  const auto k2 = slice(p.k, 100, 150), v2 = slice(p.v, 100, 150);
  AttentionState state;
  state.reset(n_query, p.shape.n_head, kHeadDim);
  attention_accumulate(p.shape, q.data(), n_query, q_pos0,
                       KvView{KvType::kF32, k2.data(), v2.data(), 150 * kHeadDim, 150}, 100,
                       p.masks, state, 2);
  attention_accumulate(p.shape, q.data(), n_query, q_pos0,
                       KvView{KvType::kF32, k1.data(), v1.data(), 100 * kHeadDim, 100}, 0, p.masks,
                       state, 1);
  std::vector<float> got(q.size()), want(q.size());
  attention_finish(state, got.data());
  reference::attention(p.shape, q.data(), n_query, q_pos0, whole_view(p), p.masks, want.data());
  EXPECT_LE(max_abs_diff(got, want), 2e-5);
}

TEST(AttentionSegments, FinishedStateKeepsMaxAndDenominator) {
  // One query, two keys with scores 0 and 2: max 2, denominator 1 + e^-2.
  const AttentionShape shape{1, 1, 2, 1.0f};
  const std::vector<float> q = {1, 0}, k = {0, 0, 2, 0}, v = {1, 0, 0, 1};
  AttentionState state;
  state.reset(1, 1, 2);
  attention_accumulate(shape, q.data(), 1, 1, KvView{KvType::kF32, k.data(), v.data(), 4, 2}, 0, {},
                       state, 1);
  std::vector<float> out(2);
  attention_finish(state, out.data());
  EXPECT_FLOAT_EQ(state.max[0], 2.0f);
  EXPECT_NEAR(state.denom[0], 1.0f + std::exp(-2.0f), 1e-6);
  EXPECT_NEAR(out[1], 1.0f / (1.0f + std::exp(-2.0f)), 1e-6);
}

TEST(AttentionSegments, RowsWithNoKeyInAnyRunGetZeros) {
  const AttentionShape shape{2, 1, 4, 1.0f};
  const auto q = random_floats(2 * 4, 1);
  const auto kv = random_floats(10 * 4, 2);
  AttentionState state;
  state.reset(1, 2, 4);
  // The only run holds keys at positions 50..59, after the query at position 5.
  const KeyRun run{0, kv.data(), kv.data(), 50, 10};
  attention_accumulate(shape, q.data(), 1, 5, KvType::kF32, std::span(&run, 1), {}, state, 2);
  std::vector<float> out(8, 3.0f);
  attention_finish(state, out.data());
  for (float x : out) EXPECT_EQ(x, 0.0f);
}

TEST(AttentionSegments, RejectsMismatchedStateAndBadRuns) {
  const AttentionShape shape{2, 1, 4, 1.0f};
  const auto buf = random_floats(64, 1);
  AttentionState state;
  state.reset(2, 2, 4);  // sized for 2 queries
  const KeyRun run{0, buf.data(), buf.data(), 0, 4};
  EXPECT_THROW(
      attention_accumulate(shape, buf.data(), 1, 0, KvType::kF32, std::span(&run, 1), {}, state, 1),
      Error);
  state.reset(1, 2, 4);
  const KeyRun bad_head{1, buf.data(), buf.data(), 0, 4};
  EXPECT_THROW(attention_accumulate(shape, buf.data(), 1, 0, KvType::kF32, std::span(&bad_head, 1),
                                    {}, state, 1),
               Error);
}

}  // namespace
}  // namespace moa::kernels
