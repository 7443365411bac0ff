// H2O cache storage and policy (see h2o_kv_cache.h, docs/h2o.md). Each (layer, sequence) slab
// holds per KV head `capacity` slots of key, value, position and score, kept compact: slots
// 0 .. n_kept-1 are live. A step writes the new tokens after the live slots — in place when they
// fit (decode), otherwise into a scratch copy (a prompt longer than the budget) — so the kept
// keys and the new ones form one KvView in which slot order doubles as causal order: the kept
// keys all precede the new tokens. Flash attention (segment API, whose final max/denominator
// give the row log-sum-exp) and the tiled attention-weights kernel run on that view; eviction
// then fills the holes (in place) or copies the survivors back.
#include "kv/h2o_kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "kernels/attention_weights.h"
#include "util/checked_math.h"
#include "util/error.h"
#include "util/input_error.h"

namespace moa {

// Candidates of one step when they do not fit the slab: the kept keys copied, then the chunk.
// Kept between steps (it only grows), so bytes() counts it.
struct H2oKvCache::Scratch {
  std::vector<uint8_t> k, v;
  std::vector<int32_t> pos;
  std::vector<float> score;

  void reserve(int64_t n_head_kv, int64_t slots, size_t row_bytes) {
    const auto n = static_cast<size_t>(n_head_kv * slots);
    if (pos.size() >= n) return;
    k.assign(n * row_bytes, 0);
    v.assign(n * row_bytes, 0);
    pos.assign(n, 0);
    score.assign(n, 0.0f);
  }
  uint64_t bytes() const {
    return heap_bytes(k) + heap_bytes(v) + heap_bytes(pos) + heap_bytes(score);
  }
};

struct H2oKvCache::Slots {
  uint8_t* k = nullptr;
  uint8_t* v = nullptr;
  int32_t* pos = nullptr;
  float* score = nullptr;
  int64_t capacity = 0;  // slots per head
};

namespace {

// True when candidate a should be kept before candidate b: higher score, then newer.
bool ranks_higher(float score_a, int32_t pos_a, float score_b, int32_t pos_b) {
  return score_a != score_b ? score_a > score_b : pos_a > pos_b;
}

}  // namespace

int64_t h2o_budget(double density, int64_t n_ctx) {
  if (!std::isfinite(density) || density <= 0.0 || density > 1.0) {
    fail_input("density", "{} is not a KV density: expected a number in (0, 1]", density);
  }
  if (n_ctx <= 0) fail("h2o: context size {}: expected > 0", n_ctx);
  return std::clamp<int64_t>(std::llround(density * static_cast<double>(n_ctx)), 1, n_ctx);
}

std::vector<uint8_t> h2o_keep_set(std::span<const int32_t> positions, std::span<const float> scores,
                                  int64_t budget, int64_t recent) {
  const size_t n = positions.size();
  std::vector<uint8_t> keep(n, 1);
  if (static_cast<int64_t>(n) <= budget) return keep;
  const int32_t newest = *std::max_element(positions.begin(), positions.end());
  std::vector<size_t> older;
  int64_t n_recent = 0;
  for (size_t i = 0; i < n; ++i) {
    if (newest - positions[i] < recent) {
      ++n_recent;
    } else {
      older.push_back(i);
    }
  }
  const auto n_heavy = static_cast<size_t>(std::max<int64_t>(0, budget - n_recent));
  auto better = [&](size_t a, size_t b) {
    return ranks_higher(scores[a], positions[a], scores[b], positions[b]);
  };
  if (n_heavy < older.size()) {
    std::nth_element(older.begin(), older.begin() + static_cast<std::ptrdiff_t>(n_heavy),
                     older.end(), better);
    for (size_t i = n_heavy; i < older.size(); ++i) keep[older[i]] = 0;
  }
  return keep;
}

H2oKvCache::H2oKvCache(const KvShape& shape, int64_t budget)
    : shape_(shape), budget_(budget), scratch_(std::make_unique<Scratch>()) {
  check_kv_shape("h2o cache", shape);
  if (budget < 1 || budget > shape.n_ctx) {
    fail("h2o cache: budget {} keys per head: expected 1 .. context size {}", budget, shape.n_ctx);
  }
  capacity_ = std::min(budget + 1, shape.n_ctx);
  const size_t slots =
      checked_product("h2o cache", {shape.n_layer, shape.n_seq, shape.n_head_kv, capacity_});
  keys_.assign(checked_product("h2o cache", {static_cast<int64_t>(slots),
                                             static_cast<int64_t>(shape.row_bytes())}),
               0);
  values_.assign(keys_.size(), 0);
  positions_.assign(slots, 0);
  scores_.assign(slots, 0.0f);
  lengths_.assign(static_cast<size_t>(shape.n_seq), 0);
}

H2oKvCache::~H2oKvCache() = default;

uint64_t H2oKvCache::bytes() const {
  return heap_bytes(keys_) + heap_bytes(values_) + heap_bytes(positions_) + heap_bytes(scores_) +
         heap_bytes(lengths_) + scratch_->bytes();
}

int64_t H2oKvCache::length(int seq) const {
  check_layer_seq(0, seq);
  return lengths_[static_cast<size_t>(seq)];
}

int64_t H2oKvCache::n_kept(int seq) const { return std::min(length(seq), budget_); }

void H2oKvCache::check_room(int seq, int64_t n_new) const {
  check_context_room(seq, length(seq), n_new, shape_.n_ctx, "the context the cache was sized for");
}

void H2oKvCache::check_layer_seq(int64_t layer, int seq) const {
  if (seq < 0 || seq >= shape_.n_seq) {
    fail("h2o cache: sequence {} does not exist (cache holds {})", seq, shape_.n_seq);
  }
  if (layer < 0 || layer >= shape_.n_layer) fail("h2o cache: layer {} does not exist", layer);
}

size_t H2oKvCache::slab_index(int64_t layer, int seq) const {
  return (static_cast<size_t>(layer) * static_cast<size_t>(shape_.n_seq) +
          static_cast<size_t>(seq)) *
         static_cast<size_t>(shape_.n_head_kv * capacity_);
}

H2oKvCache::Slots H2oKvCache::slab(int64_t layer, int seq) {
  const size_t slot0 = slab_index(layer, seq);
  const size_t row_bytes = shape_.row_bytes();
  return {keys_.data() + slot0 * row_bytes, values_.data() + slot0 * row_bytes,
          positions_.data() + slot0, scores_.data() + slot0, capacity_};
}

void H2oKvCache::attend(int64_t layer, int seq, int64_t pos, int64_t n_tokens,
                        const kernels::AttentionShape& shape, const float* q, const float* k,
                        const float* v, float* out, int n_threads) {
  check_layer_seq(layer, seq);
  if (pos != length(seq)) {
    fail("h2o cache: sequence {} holds {} tokens, cannot attend at position {}", seq, length(seq),
         pos);
  }
  check_room(seq, n_tokens);
  if (shape.n_head_kv != shape_.n_head_kv || shape.head_dim != shape_.head_dim) {
    fail("h2o cache: attention shape ({} kv heads x {}) does not match the cache ({} x {})",
         shape.n_head_kv, shape.head_dim, shape_.n_head_kv, shape_.head_dim);
  }
  if (n_tokens <= 0) return;
  const int64_t hd = shape_.head_dim;
  const size_t row_bytes = shape_.row_bytes();
  const int64_t kept = std::min(pos, budget_);
  const int64_t total = kept + n_tokens;
  Slots cache = slab(layer, seq);
  Slots candidates = cache;
  if (total > capacity_) {
    Scratch& scratch = *scratch_;
    scratch.reserve(shape_.n_head_kv, total, row_bytes);
    candidates = {scratch.k.data(), scratch.v.data(), scratch.pos.data(), scratch.score.data(),
                  total};
    for (int64_t h = 0; h < shape_.n_head_kv; ++h) {
      const size_t from = static_cast<size_t>(h * capacity_), to = static_cast<size_t>(h * total);
      std::memcpy(candidates.k + to * row_bytes, cache.k + from * row_bytes, kept * row_bytes);
      std::memcpy(candidates.v + to * row_bytes, cache.v + from * row_bytes, kept * row_bytes);
      std::copy_n(cache.pos + from, kept, candidates.pos + to);
      std::copy_n(cache.score + from, kept, candidates.score + to);
    }
  }
  for (int64_t h = 0; h < shape_.n_head_kv; ++h) {
    const auto slot = static_cast<size_t>(h * candidates.capacity + kept);
    store_kv_rows(k + h * hd, shape_.kv_dim(), n_tokens, hd, shape_.type,
                  candidates.k + slot * row_bytes);
    store_kv_rows(v + h * hd, shape_.kv_dim(), n_tokens, hd, shape_.type,
                  candidates.v + slot * row_bytes);
    for (int64_t t = 0; t < n_tokens; ++t) {
      candidates.pos[slot + static_cast<size_t>(t)] = static_cast<int32_t>(pos + t);
      candidates.score[slot + static_cast<size_t>(t)] = 0.0f;
    }
  }
  // Query t sits at slot position kept + t of the view: it sees every kept key and the new
  // tokens up to itself, which is causal attention over the kept set.
  const kernels::KvView view{shape_.type, candidates.k, candidates.v, candidates.capacity * hd,
                             total};
  kernels::AttentionState state;
  state.reset(n_tokens, shape.n_head, shape.head_dim);
  kernels::attention_accumulate(shape, q, n_tokens, kept, view, 0, {}, state, n_threads);
  kernels::attention_finish(state, out);
  // The attention's own max and denominator give each row's log-sum-exp, sparing the weights
  // kernel its first pass.
  std::vector<float> row_lse(state.max.size());
  for (size_t r = 0; r < row_lse.size(); ++r) {
    row_lse[r] = state.denom[r] > 0.0f ? state.max[r] + std::log(state.denom[r])
                                       : -std::numeric_limits<float>::infinity();
  }
  kernels::accumulate_attention_weights(shape, q, n_tokens, kept, view, {}, row_lse.data(),
                                        candidates.score, candidates.capacity, n_threads);
  if (total > budget_) evict(candidates, cache, total);
}

void H2oKvCache::evict(Slots& candidates, Slots& kept, int64_t n_candidates) {
  const size_t row_bytes = shape_.row_bytes();
  const bool in_place = candidates.k == kept.k;
  auto move = [&](int64_t h, int64_t from, int64_t to) {
    const auto src = static_cast<size_t>(h * candidates.capacity + from);
    const auto dst = static_cast<size_t>(h * kept.capacity + to);
    std::memcpy(kept.k + dst * row_bytes, candidates.k + src * row_bytes, row_bytes);
    std::memcpy(kept.v + dst * row_bytes, candidates.v + src * row_bytes, row_bytes);
    kept.pos[dst] = candidates.pos[src];
    kept.score[dst] = candidates.score[src];
  };
  for (int64_t h = 0; h < shape_.n_head_kv; ++h) {
    const auto base = static_cast<size_t>(h * candidates.capacity);
    const auto n = static_cast<size_t>(n_candidates);
    const std::vector<uint8_t> keep = h2o_keep_set(
        {candidates.pos + base, n}, {candidates.score + base, n}, budget_, recent_window());
    if (in_place) {
      // Survivors beyond the budget fill the holes below it: one move per evicted key.
      int64_t hole = 0;
      for (int64_t from = budget_; from < n_candidates; ++from) {
        if (!keep[static_cast<size_t>(from)]) continue;
        while (keep[static_cast<size_t>(hole)]) ++hole;
        move(h, from, hole++);
      }
    } else {
      int64_t to = 0;
      for (int64_t from = 0; from < n_candidates; ++from) {
        if (keep[static_cast<size_t>(from)]) move(h, from, to++);
      }
    }
  }
}

void H2oKvCache::set_length(int seq, int64_t length) {
  check_layer_seq(0, seq);
  const int64_t current = lengths_[static_cast<size_t>(seq)];
  if (length < 0 || length > shape_.n_ctx) {
    fail("context is full: length {} exceeds the context of {}", length, shape_.n_ctx);
  }
  if (length != 0 && length < current) {
    fail(
        "h2o cache: cannot truncate sequence {} from {} to {} tokens (evicted keys are gone; "
        "only clearing is possible)",
        seq, current, length);
  }
  lengths_[static_cast<size_t>(seq)] = length;
}

bool H2oKvCache::rewind(int seq, int64_t length) {
  if (length != 0 && length != this->length(seq)) return false;
  set_length(seq, length);
  return true;
}

void H2oKvCache::fill(int seq, int64_t length, std::span<const float> k, std::span<const float> v) {
  check_layer_seq(0, seq);
  const int64_t n_rows = fill_rows("h2o cache", shape_, length, k, v);
  const int64_t kept = std::min(length, budget_), first = length - kept;
  const int64_t hd = shape_.head_dim, kv_dim = shape_.kv_dim();
  const size_t row_bytes = shape_.row_bytes();
  for (int64_t layer = 0; layer < shape_.n_layer; ++layer) {
    Slots slots = slab(layer, seq);
    for (int64_t h = 0; h < shape_.n_head_kv; ++h) {
      // Slot s holds position first + s, from row (first + s) % n_rows: runs up to a wrap.
      for (int64_t s = 0; s < kept;) {
        const int64_t row = (first + s) % n_rows;
        const int64_t n = std::min(kept - s, n_rows - row);
        const auto slot = static_cast<size_t>(h * capacity_ + s);
        const int64_t src = row * kv_dim + h * hd;
        store_kv_rows(k.data() + src, kv_dim, n, hd, shape_.type, slots.k + slot * row_bytes);
        store_kv_rows(v.data() + src, kv_dim, n, hd, shape_.type, slots.v + slot * row_bytes);
        for (int64_t i = 0; i < n; ++i) {
          slots.pos[slot + static_cast<size_t>(i)] = static_cast<int32_t>(first + s + i);
          slots.score[slot + static_cast<size_t>(i)] = 0.0f;
        }
        s += n;
      }
    }
  }
  lengths_[static_cast<size_t>(seq)] = length;
}

kernels::KvView H2oKvCache::view(int64_t layer, int seq) const {
  check_layer_seq(layer, seq);
  const size_t slot0 = slab_index(layer, seq);
  const size_t row_bytes = shape_.row_bytes();
  return {shape_.type, keys_.data() + slot0 * row_bytes, values_.data() + slot0 * row_bytes,
          capacity_ * shape_.head_dim, n_kept(seq)};
}

std::span<const int32_t> H2oKvCache::positions(int64_t layer, int seq, int64_t kv_head) const {
  check_layer_seq(layer, seq);
  if (kv_head < 0 || kv_head >= shape_.n_head_kv)
    fail("h2o cache: kv head {} does not exist", kv_head);
  return {positions_.data() + slab_index(layer, seq) + static_cast<size_t>(kv_head * capacity_),
          static_cast<size_t>(n_kept(seq))};
}

std::span<const float> H2oKvCache::scores(int64_t layer, int seq, int64_t kv_head) const {
  check_layer_seq(layer, seq);
  if (kv_head < 0 || kv_head >= shape_.n_head_kv)
    fail("h2o cache: kv head {} does not exist", kv_head);
  return {scores_.data() + slab_index(layer, seq) + static_cast<size_t>(kv_head * capacity_),
          static_cast<size_t>(n_kept(seq))};
}

}  // namespace moa
