// The H2O cache against a naive simulation of the same policy (full key history, kept set and
// scores as plain lists, double precision): attention outputs and kept positions at every step
// of prefill, chunked prompts and decode; the eviction rule on hand-made score patterns; memory
// against the dense cache; and the errors.
#include "kv/h2o_kv_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "kv/kv_cache.h"
#include "util/error.h"

namespace moa {
namespace {

struct Dims {
  int64_t n_head = 4, n_head_kv = 2, head_dim = 8;
};

kernels::AttentionShape attention_shape(const Dims& d) {
  return {d.n_head, d.n_head_kv, d.head_dim, 1.0f / std::sqrt(static_cast<float>(d.head_dim))};
}

KvShape cache_shape(const Dims& d, int64_t n_ctx, int n_seq = 1) {
  KvShape s;
  s.n_layer = 2;
  s.n_head_kv = d.n_head_kv;
  s.head_dim = d.head_dim;
  s.n_ctx = n_ctx;
  s.n_seq = n_seq;
  return s;
}

// The H2O policy written as directly as possible: every key ever seen, the kept positions per
// KV head and their accumulated scores in double precision.
class NaiveH2o {
 public:
  NaiveH2o(const Dims& d, int64_t budget)
      : d_(d),
        budget_(budget),
        kept_(static_cast<size_t>(d.n_head_kv)),
        score_(static_cast<size_t>(d.n_head_kv)) {}

  // Same contract as H2oKvCache::attend for one layer; returns the attention output.
  std::vector<float> step(const std::vector<float>& q, const std::vector<float>& k,
                          const std::vector<float>& v, int64_t n) {
    const int64_t pos = static_cast<int64_t>(keys_.size());
    const int64_t kv_dim = d_.n_head_kv * d_.head_dim;
    for (int64_t t = 0; t < n; ++t) {
      keys_.emplace_back(k.begin() + t * kv_dim, k.begin() + (t + 1) * kv_dim);
      values_.emplace_back(v.begin() + t * kv_dim, v.begin() + (t + 1) * kv_dim);
    }
    std::vector<float> out(static_cast<size_t>(n * d_.n_head * d_.head_dim));
    const int64_t group = d_.n_head / d_.n_head_kv;
    for (int64_t g = 0; g < d_.n_head_kv; ++g) {
      std::vector<int64_t>& kept = kept_[static_cast<size_t>(g)];
      for (int64_t t = 0; t < n; ++t) kept.push_back(pos + t);
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t h = g * group; h < (g + 1) * group; ++h) {
          attend_row(q, t, h, g, pos + t, &out);
        }
      }
      evict(g, pos + n);
    }
    return out;
  }

  std::set<int64_t> kept(int64_t g) const {
    const auto& k = kept_[static_cast<size_t>(g)];
    return {k.begin(), k.end()};
  }

 private:
  double key_at(int64_t p, int64_t g, int64_t i) const {
    return keys_[static_cast<size_t>(p)][static_cast<size_t>(g * d_.head_dim + i)];
  }

  void attend_row(const std::vector<float>& q, int64_t t, int64_t h, int64_t g, int64_t query_pos,
                  std::vector<float>* out) {
    const float* qv = q.data() + (t * d_.n_head + h) * d_.head_dim;
    std::vector<int64_t> visible;
    for (int64_t p : kept_[static_cast<size_t>(g)]) {
      if (p <= query_pos) visible.push_back(p);
    }
    std::vector<double> s;
    for (int64_t p : visible) {
      double dot = 0.0;
      for (int64_t i = 0; i < d_.head_dim; ++i) dot += qv[i] * key_at(p, g, i);
      s.push_back(dot / std::sqrt(static_cast<double>(d_.head_dim)));
    }
    const double m = *std::max_element(s.begin(), s.end());
    double denom = 0.0;
    for (double& x : s) denom += (x = std::exp(x - m));
    float* o = out->data() + (t * d_.n_head + h) * d_.head_dim;
    for (int64_t i = 0; i < d_.head_dim; ++i) {
      double acc = 0.0;
      for (size_t j = 0; j < visible.size(); ++j) {
        acc += s[j] / denom *
               values_[static_cast<size_t>(visible[j])][static_cast<size_t>(g * d_.head_dim + i)];
      }
      o[i] = static_cast<float>(acc);
    }
    for (size_t j = 0; j < visible.size(); ++j)
      score_[static_cast<size_t>(g)][visible[j]] += s[j] / denom;
  }

  // Keeps the budget/2 newest positions, then the best-scoring older ones (ties: newer).
  void evict(int64_t g, int64_t length) {
    std::vector<int64_t>& kept = kept_[static_cast<size_t>(g)];
    if (static_cast<int64_t>(kept.size()) <= budget_) return;
    const int64_t recent = budget_ / 2;
    std::vector<int64_t> result, older;
    for (int64_t p : kept) (p >= length - recent ? result : older).push_back(p);
    std::map<int64_t, double>& score = score_[static_cast<size_t>(g)];
    std::sort(older.begin(), older.end(), [&](int64_t a, int64_t b) {
      return score[a] != score[b] ? score[a] > score[b] : a > b;
    });
    older.resize(static_cast<size_t>(budget_ - static_cast<int64_t>(result.size())));
    result.insert(result.end(), older.begin(), older.end());
    kept = result;
  }

  Dims d_;
  int64_t budget_;
  std::vector<std::vector<float>> keys_, values_;  // per position: [n_head_kv * head_dim]
  std::vector<std::vector<int64_t>> kept_;
  std::vector<std::map<int64_t, double>> score_;
};

std::vector<float> random_vector(int64_t n, std::mt19937& rng, float scale) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& f : x) f = dist(rng);
  return x;
}

std::set<int64_t> kept_positions(const H2oKvCache& cache, int64_t layer, int seq, int64_t g) {
  const auto p = cache.positions(layer, seq, g);
  return {p.begin(), p.end()};
}

// Feeds `chunks` (token counts) through layer 1 of the cache and the simulation, comparing the
// outputs and the kept positions of every head after each step.
void expect_cache_follows_naive_policy(const Dims& d, int64_t budget,
                                       const std::vector<int64_t>& chunks, uint32_t seed) {
  int64_t n_ctx = 0;
  for (int64_t c : chunks) n_ctx += c;
  H2oKvCache cache(cache_shape(d, n_ctx, 2), budget);
  NaiveH2o naive(d, budget);
  std::mt19937 rng(seed);
  int64_t pos = 0;
  for (int64_t n : chunks) {
    const auto q = random_vector(n * d.n_head * d.head_dim, rng, 2.0f);
    const auto k = random_vector(n * d.n_head_kv * d.head_dim, rng, 2.0f);
    const auto v = random_vector(n * d.n_head_kv * d.head_dim, rng, 1.0f);
    std::vector<float> out(q.size());
    cache.attend(1, 1, pos, n, attention_shape(d), q.data(), k.data(), v.data(), out.data(), 2);
    pos += n;
    cache.set_length(1, pos);
    const std::vector<float> want = naive.step(q, k, v, n);
    for (size_t i = 0; i < out.size(); ++i) {
      ASSERT_NEAR(out[i], want[i], 1e-4) << "output " << i << " at length " << pos;
    }
    for (int64_t g = 0; g < d.n_head_kv; ++g) {
      ASSERT_EQ(kept_positions(cache, 1, 1, g), naive.kept(g)) << "head " << g << " at " << pos;
    }
  }
}

TEST(H2oKvCache, PrefillThenDecodeFollowsTheNaivePolicy) {
  std::vector<int64_t> chunks = {25};
  chunks.resize(45, 1);
  expect_cache_follows_naive_policy(Dims{}, 10, chunks, 7);
}

TEST(H2oKvCache, ChunkedPromptFollowsTheNaivePolicy) {
  expect_cache_follows_naive_policy(Dims{}, 12, {3, 7, 2, 1, 12, 1, 30, 1, 1, 5, 1}, 8);
  expect_cache_follows_naive_policy(Dims{6, 3, 16}, 9, {4, 4, 4, 1, 1, 1, 1, 20, 1, 1}, 9);
}

TEST(H2oKvCache, OddAndTinyBudgetsFollowTheNaivePolicy) {
  std::vector<int64_t> chunks = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 6, 1, 1, 1};
  expect_cache_follows_naive_policy(Dims{2, 2, 4}, 7, chunks, 10);
  expect_cache_follows_naive_policy(Dims{2, 1, 4}, 1, chunks, 11);
  expect_cache_follows_naive_policy(Dims{2, 1, 4}, 2, chunks, 12);
}

TEST(H2oKvCache, KeepsRecentWindowAndBestScoredOlderKeys) {
  // Positions 0..9; recent window 3 keeps 7, 8, 9 however low they score.
  const std::vector<int32_t> pos = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<float> score = {9.0f, 1.0f, 5.0f, 0.5f, 7.0f, 2.0f, 3.0f, 0.0f, 0.0f, 0.0f};
  const std::vector<uint8_t> keep = h2o_keep_set(pos, score, 6, 3);
  EXPECT_EQ(keep, (std::vector<uint8_t>{1, 0, 1, 0, 1, 0, 0, 1, 1, 1}));
}

TEST(H2oKvCache, EvictsTheOlderKeyOnEqualScores) {
  // Slot order is arbitrary: positions need not be sorted.
  const std::vector<int32_t> pos = {4, 0, 9, 2, 8};
  const std::vector<float> score = {1.0f, 1.0f, 0.0f, 1.0f, 0.0f};
  EXPECT_EQ(h2o_keep_set(pos, score, 4, 2), (std::vector<uint8_t>{1, 0, 1, 1, 1}));
  EXPECT_EQ(h2o_keep_set(pos, score, 3, 2), (std::vector<uint8_t>{1, 0, 1, 0, 1}));
  EXPECT_EQ(h2o_keep_set(pos, score, 5, 2), (std::vector<uint8_t>(5, 1)));
}

// Zero queries attend uniformly, so older keys have accumulated more: H2O then keeps the first
// budget/2 tokens and the recent window, at the end of the prompt and while decoding.
TEST(H2oKvCache, UniformAttentionKeepsTheOldestAndTheNewest) {
  const Dims d;
  H2oKvCache cache(cache_shape(d, 64), 10);
  std::mt19937 rng(3);
  auto run = [&](int64_t pos, int64_t n) {
    const std::vector<float> q(static_cast<size_t>(n * d.n_head * d.head_dim), 0.0f);
    const auto k = random_vector(n * d.n_head_kv * d.head_dim, rng, 1.0f);
    std::vector<float> out(q.size());
    cache.attend(0, 0, pos, n, attention_shape(d), q.data(), k.data(), k.data(), out.data(), 1);
    cache.set_length(0, pos + n);
  };
  run(0, 30);
  EXPECT_EQ(kept_positions(cache, 0, 0, 1), (std::set<int64_t>{0, 1, 2, 3, 4, 25, 26, 27, 28, 29}));
  for (int64_t p = 30; p < 40; ++p) run(p, 1);
  EXPECT_EQ(kept_positions(cache, 0, 0, 0), (std::set<int64_t>{0, 1, 2, 3, 4, 35, 36, 37, 38, 39}));
}

// Every query points at key 3 (one large component), so it is a heavy hitter for ever.
TEST(H2oKvCache, AHeavyHitterSurvivesLongDecoding) {
  const Dims d{2, 1, 4};
  H2oKvCache cache(cache_shape(d, 200), 6);
  std::mt19937 rng(4);
  for (int64_t p = 0; p < 200; ++p) {
    std::vector<float> q = {4.0f, 0.0f, 0.0f, 0.0f, 4.0f, 0.0f, 0.0f, 0.0f};
    std::vector<float> k = random_vector(d.head_dim, rng, 0.1f);
    if (p == 3) k[0] = 3.0f;
    std::vector<float> out(q.size());
    cache.attend(0, 0, p, 1, attention_shape(d), q.data(), k.data(), k.data(), out.data(), 1);
    cache.set_length(0, p + 1);
  }
  const std::set<int64_t> kept = kept_positions(cache, 0, 0, 0);
  EXPECT_EQ(kept.size(), 6u);
  EXPECT_TRUE(kept.count(3));
  for (int64_t p = 197; p < 200; ++p) EXPECT_TRUE(kept.count(p)) << p;
}

TEST(H2oKvCache, UsesDensityTimesTheDenseBytes) {
  for (double density : {0.5, 0.25}) {
    KvShape dense_shape;
    dense_shape.n_layer = 2;
    dense_shape.n_head_kv = 4;
    dense_shape.head_dim = 64;
    dense_shape.n_ctx = 4096;
    dense_shape.type = kernels::KvType::kF16;
    const KvCache dense(dense_shape);
    KvShape shape = cache_shape(Dims{8, 4, 64}, 4096);
    shape.type = kernels::KvType::kF16;
    const H2oKvCache h2o(shape, h2o_budget(density, 4096));
    const double ratio = static_cast<double>(h2o.bytes()) / static_cast<double>(dense.bytes());
    EXPECT_GE(ratio, density);
    EXPECT_LE(ratio, density * 1.04);
  }
}

TEST(H2oKvCache, NeverReallocatesWhileDecoding) {
  const Dims d;
  H2oKvCache cache(cache_shape(d, 40), 8);
  const uint64_t slots_bytes = cache.bytes();
  const void* keys = cache.view(0, 0).k;
  std::mt19937 rng(5);
  uint64_t prefilled_bytes = 0;
  for (int64_t p = 0; p < 40; p += (p < 20 ? 20 : 1)) {
    const int64_t n = p == 0 ? 20 : 1;
    const auto q = random_vector(n * d.n_head * d.head_dim, rng, 1.0f);
    const auto k = random_vector(n * d.n_head_kv * d.head_dim, rng, 1.0f);
    std::vector<float> out(q.size());
    cache.attend(0, 0, p, n, attention_shape(d), q.data(), k.data(), k.data(), out.data(), 2);
    cache.set_length(0, p + n);
    if (p == 0) prefilled_bytes = cache.bytes();
  }
  EXPECT_EQ(cache.length(0), 40);
  EXPECT_EQ(cache.n_kept(0), 8);
  // The 20-token prompt did not fit the 9 slots: bytes() counts the scratch it kept (20 slots
  // per head of key, value, position and score), and decoding allocates nothing more.
  const uint64_t slot_bytes = 2 * d.head_dim * sizeof(float) + sizeof(int32_t) + sizeof(float);
  EXPECT_EQ(prefilled_bytes, slots_bytes + 20 * d.n_head_kv * slot_bytes);
  EXPECT_EQ(cache.bytes(), prefilled_bytes);
  EXPECT_EQ(cache.view(0, 0).k, keys);
}

TEST(H2oKvCache, FillKeepsTheNewestPositionsThenDecodes) {
  const Dims d;
  H2oKvCache cache(cache_shape(d, 64, 2), 10);
  std::vector<float> k(static_cast<size_t>(3 * d.n_head_kv * d.head_dim), 0.25f);
  AttentionCache& any = cache;
  any.fill(1, 40, k, k);
  EXPECT_EQ(cache.length(1), 40);
  std::set<int64_t> want;
  for (int64_t p = 30; p < 40; ++p) want.insert(p);
  EXPECT_EQ(kept_positions(cache, 1, 1, 1), want);
  EXPECT_FALSE(any.rewind(1, 6));  // evicted keys are gone: nothing changes
  EXPECT_EQ(cache.length(1), 40);
  any.fill(1, 6, k, k);  // rewinding refills
  EXPECT_EQ(kept_positions(cache, 0, 1, 0), (std::set<int64_t>{0, 1, 2, 3, 4, 5}));
  std::vector<float> q(static_cast<size_t>(d.n_head * d.head_dim), 0.5f), out(q.size());
  cache.attend(0, 1, 6, 1, attention_shape(d), q.data(), k.data(), k.data(), out.data(), 1);
  for (float x : out) EXPECT_NEAR(x, 0.25f, 1e-6);  // every value row is 0.25
  EXPECT_THROW(any.fill(1, 65, k, k), Error);
  EXPECT_THROW(any.fill(1, 4, std::span(k).first(5), std::span(k).first(5)), Error);
  EXPECT_TRUE(any.rewind(1, 0));
  EXPECT_EQ(cache.length(1), 0);
}

TEST(H2oKvCache, BudgetFromDensityRejectsBadValues) {
  EXPECT_EQ(h2o_budget(0.5, 1000), 500);
  EXPECT_EQ(h2o_budget(1.0, 1000), 1000);
  EXPECT_EQ(h2o_budget(0.0001, 1000), 1);
  for (double bad : {0.0, -0.5, 1.5, std::nan(""), static_cast<double>(INFINITY)}) {
    EXPECT_THROW(h2o_budget(bad, 1000), Error) << bad;
  }
}

TEST(H2oKvCache, RejectsBadShapesPositionsAndTruncation) {
  const Dims d;
  EXPECT_THROW(H2oKvCache(cache_shape(d, 16), 17), Error);
  EXPECT_THROW(H2oKvCache(cache_shape(d, 16), 0), Error);
  H2oKvCache cache(cache_shape(d, 16), 4);
  std::vector<float> q(static_cast<size_t>(20 * d.n_head * d.head_dim), 0.1f);
  std::vector<float> k(static_cast<size_t>(20 * d.n_head_kv * d.head_dim), 0.1f);
  std::vector<float> out(q.size());
  const auto shape = attention_shape(d);
  EXPECT_THROW(cache.attend(0, 0, 3, 1, shape, q.data(), k.data(), k.data(), out.data(), 1), Error);
  EXPECT_THROW(cache.attend(0, 0, 0, 17, shape, q.data(), k.data(), k.data(), out.data(), 1),
               Error);
  EXPECT_THROW(cache.attend(2, 0, 0, 1, shape, q.data(), k.data(), k.data(), out.data(), 1), Error);
  EXPECT_THROW(cache.attend(0, 1, 0, 1, shape, q.data(), k.data(), k.data(), out.data(), 1), Error);
  cache.attend(0, 0, 0, 10, shape, q.data(), k.data(), k.data(), out.data(), 1);
  cache.set_length(0, 10);
  EXPECT_THROW(cache.set_length(0, 5), Error);
  EXPECT_THROW(cache.check_room(0, 7), Error);
  cache.set_length(0, 0);
  EXPECT_EQ(cache.length(0), 0);
  cache.attend(0, 0, 0, 16, shape, q.data(), k.data(), k.data(), out.data(), 1);
}

}  // namespace
}  // namespace moa
