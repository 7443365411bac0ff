// Attention probabilities per key, tiled (see attention_weights.h). Pass 1 runs each block of
// queries (all query heads of one KV group at up to kQueryBlock positions) over its visible key
// tiles with an online max/sum to get each row's log-sum-exp. Pass 2 gives each task one key
// tile of one KV head: it streams the query blocks that can see the tile, turns scores into
// probabilities with the known log-sum-exp and sums them per key, so tasks write disjoint keys
// and need no atomics. Scores use a transposed key tile so the inner loop runs over keys.
#include "kernels/attention_weights.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "kernels/attention_tile.h"
#include "kernels/half.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::CappedTag<float, 16>;  // kKeyBlock is a whole number of vectors

constexpr int64_t kKeyBlock = kKeyTile;  // keys per tile (exp_shifted_tile works on whole tiles)
constexpr int64_t kQueryBlock = 32;      // query positions per block
constexpr int64_t kDirectMaxRows = 8;    // up to this many query rows, per-key dot products
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

float dot(const float* a, const float* b, int64_t n) {
  const DF d;
  const auto lanes = static_cast<int64_t>(hn::Lanes(d));
  auto acc = hn::Zero(d);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes)
    acc = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), acc);
  float sum = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

struct Problem {
  AttentionShape shape;
  const float* q = nullptr;
  int64_t n_query = 0;
  int64_t q_pos0 = 0;
  KvView kv;
  std::span<const BandMask> masks;
  int64_t group = 1;

  BandMask mask(int64_t g) const {
    return masks.empty() ? BandMask{} : masks[static_cast<size_t>(g)];
  }
  int64_t n_key_tiles() const { return (kv.n_keys + kKeyBlock - 1) / kKeyBlock; }
  int64_t n_query_blocks() const { return (n_query + kQueryBlock - 1) / kQueryBlock; }
};

void validate(const AttentionShape& shape, const KvView& kv, std::span<const BandMask> masks) {
  if (shape.n_head <= 0 || shape.n_head_kv <= 0 || shape.n_head % shape.n_head_kv != 0) {
    fail("attention weights: n_head {} / n_head_kv {}: expected a positive multiple", shape.n_head,
         shape.n_head_kv);
  }
  if (shape.head_dim <= 0) fail("attention weights: head_dim {}: expected > 0", shape.head_dim);
  if (!masks.empty() && static_cast<int64_t>(masks.size()) != shape.n_head_kv) {
    fail("attention weights: masks: {} given, expected 0 or n_head_kv = {}", masks.size(),
         shape.n_head_kv);
  }
  if (kv.n_keys < 0) fail("attention weights: n_keys {}: expected >= 0", kv.n_keys);
}

bool key_visible(const BandMask& mask, int64_t pos, int64_t key) {
  return key <= pos && (key < mask.sinks || pos - key < mask.span);
}

// Whether some query at a position in [first, last] sees some key in [k0, k1).
bool tile_visible(const BandMask& mask, int64_t first, int64_t last, int64_t k0, int64_t k1) {
  if (k0 > last) return false;
  if (k0 < mask.sinks || k1 - 1 >= first) return true;
  return first - (k1 - 1) < mask.span;  // closest pair: query `first`, key k1 - 1
}

// Per-thread buffers for one block of query rows against one key tile.
class TileScorer {
 public:
  explicit TileScorer(const Problem& p)
      : p_(p),
        q_block_(static_cast<size_t>(kQueryBlock * p.group * p.shape.head_dim)),
        k_transposed_(static_cast<size_t>(p.shape.head_dim * kKeyBlock)),
        scores_(static_cast<size_t>(kQueryBlock * p.group * kKeyBlock)),
        k_rows_(static_cast<size_t>(kKeyBlock * p.shape.head_dim)),
        transposed_(std::min(p.n_query, kQueryBlock) * p.group > kDirectMaxRows) {}

  // Rows (query - q0) * group + head-in-group for queries [q0, q1) of KV head g, pre-scaled.
  int64_t load_queries(int64_t g, int64_t q0, int64_t q1) {
    const int64_t hd = p_.shape.head_dim;
    q0_ = q0;
    rows_ = (q1 - q0) * p_.group;
    for (int64_t r = 0; r < rows_; ++r) {
      const float* src =
          p_.q + ((q0 + r / p_.group) * p_.shape.n_head + g * p_.group + r % p_.group) * hd;
      float* dst = q_block_.data() + r * hd;
      for (int64_t i = 0; i < hd; ++i) dst[i] = src[i] * p_.shape.scale;
    }
    return rows_;
  }

  // Keys [k0, k1) of KV head g: row-major for few query rows, else transposed to
  // [head_dim][kKeyBlock] (zero-padded) so that scores vectorise over keys.
  void load_keys(int64_t g, int64_t k0, int64_t k1) {
    const int64_t hd = p_.shape.head_dim;
    k0_ = k0;
    n_keys_ = k1 - k0;
    if (!transposed_) {
      for (int64_t j = 0; j < n_keys_; ++j) {
        load_key_row(g * p_.kv.head_stride + (k0 + j) * hd, k_rows_.data() + j * hd);
      }
      return;
    }
    if (n_keys_ < kKeyBlock) std::fill(k_transposed_.begin(), k_transposed_.end(), 0.0f);
    for (int64_t j = 0; j < n_keys_; ++j) {
      load_key_row(g * p_.kv.head_stride + (k0 + j) * hd, k_rows_.data());
      for (int64_t i = 0; i < hd; ++i) {
        k_transposed_[static_cast<size_t>(i * kKeyBlock + j)] = k_rows_[static_cast<size_t>(i)];
      }
    }
  }

  // scores(r, j) for the loaded rows and keys; hidden pairs get -inf.
  void compute(const BandMask& mask) {
    const int64_t hd = p_.shape.head_dim;
    for (int64_t r = 0; r < rows_; ++r) {
      float* s = row(r);
      std::fill_n(s, kKeyBlock, 0.0f);
      const float* qv = q_block_.data() + r * hd;
      if (transposed_) {
        for (int64_t i = 0; i < hd; ++i) {
          const float qi = qv[i];
          const float* kt = k_transposed_.data() + i * kKeyBlock;
          for (int64_t j = 0; j < kKeyBlock; ++j) s[j] += qi * kt[j];
        }
      } else {
        for (int64_t j = 0; j < n_keys_; ++j) s[j] = dot(qv, k_rows_.data() + j * hd, hd);
      }
      const int64_t pos = p_.q_pos0 + q0_ + r / p_.group;
      const int64_t last = k0_ + n_keys_ - 1;
      const bool all_visible = last <= pos && (last < mask.sinks || pos - k0_ < mask.span);
      for (int64_t j = all_visible ? n_keys_ : 0; j < kKeyBlock; ++j) {
        if (j >= n_keys_ || !key_visible(mask, pos, k0_ + j)) s[j] = kNegInf;
      }
    }
  }

  float* row(int64_t r) { return scores_.data() + r * kKeyBlock; }
  int64_t n_keys() const { return n_keys_; }

 private:
  // One key (head_dim values from element `index`) to F32 at dst.
  void load_key_row(int64_t index, float* dst) {
    const int64_t hd = p_.shape.head_dim;
    load_kv_row(p_.kv.type, static_cast<const uint8_t*>(p_.kv.k) + kv_bytes(p_.kv.type, index, hd),
                hd, dst);
  }

  const Problem& p_;
  std::vector<float> q_block_, k_transposed_, scores_, k_rows_;
  bool transposed_;  // many rows: K^T amortises its transposition; few (decode): dot products
  int64_t q0_ = 0, rows_ = 0, k0_ = 0, n_keys_ = 0;
};

// sums[j] += s[j] over a whole tile.
void add_tile(const float* s, float* sums) {
  const DF d;
  const auto lanes = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t j = 0; j < kKeyBlock; j += lanes) {
    hn::StoreU(hn::Add(hn::LoadU(d, sums + j), hn::LoadU(d, s + j)), d, sums + j);
  }
}

int64_t lse_index(const Problem& p, int64_t g, int64_t q0, int64_t r) {
  return (q0 + r / p.group) * p.shape.n_head + g * p.group + r % p.group;
}

// Pass 1 for one query block: online max and sum over its visible key tiles.
void block_lse(const Problem& p, TileScorer& scorer, int64_t g, int64_t q0, float* lse) {
  const int64_t q1 = std::min(p.n_query, q0 + kQueryBlock);
  const int64_t rows = scorer.load_queries(g, q0, q1);
  std::vector<float> m(static_cast<size_t>(rows), kNegInf), l(static_cast<size_t>(rows), 0.0f);
  const BandMask mask = p.mask(g);
  for (int64_t t = 0; t < p.n_key_tiles(); ++t) {
    const int64_t k0 = t * kKeyBlock, k1 = std::min(p.kv.n_keys, k0 + kKeyBlock);
    if (!tile_visible(mask, p.q_pos0 + q0, p.q_pos0 + q1 - 1, k0, k1)) continue;
    scorer.load_keys(g, k0, k1);
    scorer.compute(mask);
    for (int64_t r = 0; r < rows; ++r) {
      float* s = scorer.row(r);
      const float tile_max = *std::max_element(s, s + kKeyBlock);
      if (tile_max == kNegInf) continue;
      const auto ri = static_cast<size_t>(r);
      const float new_m = std::max(m[ri], tile_max);
      const float sum = exp_shifted_tile(s, new_m);
      l[ri] = l[ri] * std::exp(m[ri] - new_m) + sum;
      m[ri] = new_m;
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const auto ri = static_cast<size_t>(r);
    lse[lse_index(p, g, q0, r)] = l[ri] > 0.0f ? m[ri] + std::log(l[ri]) : kNegInf;
  }
}

// Pass 2 for one key tile of KV head g: probabilities summed over every query row.
void tile_weights(const Problem& p, TileScorer& scorer, int64_t g, int64_t t, const float* lse,
                  float* scores) {
  const int64_t k0 = t * kKeyBlock, k1 = std::min(p.kv.n_keys, k0 + kKeyBlock);
  const BandMask mask = p.mask(g);
  float sums[kKeyBlock] = {};
  bool loaded = false;
  for (int64_t b = 0; b < p.n_query_blocks(); ++b) {
    const int64_t q0 = b * kQueryBlock, q1 = std::min(p.n_query, q0 + kQueryBlock);
    if (!tile_visible(mask, p.q_pos0 + q0, p.q_pos0 + q1 - 1, k0, k1)) continue;
    if (!loaded) scorer.load_keys(g, k0, k1);
    loaded = true;
    const int64_t rows = scorer.load_queries(g, q0, q1);
    scorer.compute(mask);
    for (int64_t r = 0; r < rows; ++r) {
      const float row_lse = lse[lse_index(p, g, q0, r)];
      if (row_lse == kNegInf) continue;
      float* s = scorer.row(r);
      exp_shifted_tile(s, row_lse);
      add_tile(s, sums);
    }
  }
  for (int64_t j = 0; j < k1 - k0; ++j) scores[k0 + j] += sums[j];
}

}  // namespace

void attention_row_lse(const AttentionShape& shape, const float* q, int64_t n_query, int64_t q_pos0,
                       const KvView& kv, std::span<const BandMask> masks, float* lse,
                       int n_threads) {
  validate(shape, kv, masks);
  if (n_query <= 0) return;
  const Problem p{shape, q, n_query, q_pos0, kv, masks, shape.n_head / shape.n_head_kv};
  const int64_t n_tasks = shape.n_head_kv * p.n_query_blocks();
#pragma omp parallel num_threads(std::max(1, n_threads))
  {
    TileScorer scorer(p);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < n_tasks; ++task) {
      block_lse(p, scorer, task / p.n_query_blocks(), (task % p.n_query_blocks()) * kQueryBlock,
                lse);
    }
  }
}

void accumulate_attention_weights(const AttentionShape& shape, const float* q, int64_t n_query,
                                  int64_t q_pos0, const KvView& kv, std::span<const BandMask> masks,
                                  const float* row_lse, float* scores, int64_t score_stride,
                                  int n_threads) {
  validate(shape, kv, masks);
  if (score_stride < kv.n_keys) {
    fail("attention weights: score_stride {}: expected >= n_keys {}", score_stride, kv.n_keys);
  }
  if (n_query <= 0 || kv.n_keys == 0) return;
  std::vector<float> own_lse;
  if (row_lse == nullptr) {
    own_lse.resize(static_cast<size_t>(n_query * shape.n_head));
    attention_row_lse(shape, q, n_query, q_pos0, kv, masks, own_lse.data(), n_threads);
    row_lse = own_lse.data();
  }
  const Problem p{shape, q, n_query, q_pos0, kv, masks, shape.n_head / shape.n_head_kv};
  const int64_t n_tasks = shape.n_head_kv * p.n_key_tiles();
#pragma omp parallel num_threads(std::max(1, n_threads))
  {
    TileScorer scorer(p);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < n_tasks; ++task) {
      const int64_t g = task / p.n_key_tiles();
      tile_weights(p, scorer, g, task % p.n_key_tiles(), row_lse, scores + g * score_stride);
    }
  }
}

}  // namespace moa::kernels
