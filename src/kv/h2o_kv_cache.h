// H2O (Heavy-Hitter Oracle, Zhang et al. 2023) KV cache: every KV head of every layer and
// sequence keeps at most `budget` keys — the budget/2 most recent ones plus the keys with the
// largest accumulated attention among the older ones ("heavy hitters"); the rest are evicted.
// Slots hold key, value, absolute position and accumulated score; their order is arbitrary
// (attention is a softmax over a set, and keys are stored after RoPE). Memory is allocated once:
// budget + 1 slots per head (the extra one receives the decoded token before the eviction).
// A step of n new tokens attends densely to the kept keys plus the new ones (so an H2O prefill
// is dense), adds the probabilities to the scores, then evicts down to the budget. The exact
// variant is documented in docs/h2o.md.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kernels/kernels.h"
#include "kv/attention_cache.h"
#include "kv/kv_shape.h"
#include "util/huge_pages.h"

namespace moa {

// The per-head budget at a KV density: round(density * n_ctx), at least 1. Throws unless
// density is finite and in (0, 1].
int64_t h2o_budget(double density, int64_t n_ctx);

// The H2O policy on one head's candidate keys: keep[i] = 1 for the `recent` newest positions
// and for the (budget - those) best of the others by accumulated score (ties: the newer key
// stays); everything is kept when there are at most `budget` candidates.
std::vector<uint8_t> h2o_keep_set(std::span<const int32_t> positions, std::span<const float> scores,
                                  int64_t budget, int64_t recent);

class H2oKvCache final : public AttentionCache {
 public:
  // Allocates every slot up front for `budget` keys per KV head; throws moa::Error on a
  // non-positive size or a budget outside 1 .. n_ctx.
  H2oKvCache(const KvShape& shape, int64_t budget);
  ~H2oKvCache() override;

  const KvShape& shape() const { return shape_; }
  int64_t n_ctx() const override { return shape_.n_ctx; }
  int n_seq() const override { return shape_.n_seq; }
  int64_t budget() const { return budget_; }
  int64_t recent_window() const { return budget_ / 2; }
  // Keys, values, positions and scores of every slot, and the scratch of the largest chunk that
  // did not fit the slots so far (kept for reuse: bytes() grows once per larger such chunk).
  uint64_t bytes() const override;

  // Tokens the sequence has seen (positions 0 .. length-1), and how many each head keeps.
  int64_t length(int seq) const override;
  int64_t n_kept(int seq) const;
  // Throws "context is full: ..." when n_new more positions do not fit in sequence `seq`.
  void check_room(int seq, int64_t n_new) const override;
  // Any chunk fits: one longer than the free slots is attended in a temporary buffer.
  int64_t max_chunk() const override { return shape_.n_ctx; }

  // One layer's attention for n_tokens new tokens of `seq` at positions pos .. pos+n_tokens-1
  // (pos must equal length(seq)): q is [n_tokens][n_head][head_dim] after RoPE, k and v are
  // [n_tokens][n_head_kv * head_dim]; writes out [n_tokens][n_head][head_dim], accumulates the
  // scores and evicts this layer's heads down to the budget.
  void attend(int64_t layer, int seq, int64_t pos, int64_t n_tokens,
              const kernels::AttentionShape& shape, const float* q, const float* k, const float* v,
              float* out, int n_threads) override;
  // Advances the length after every layer attended, or clears with 0; evicted keys are gone,
  // so any other truncation is an error.
  void set_length(int seq, int64_t length) override;
  // Every head of every layer keeps the newest min(length, budget) positions, scores zero.
  void fill(int seq, int64_t length, std::span<const float> k, std::span<const float> v) override;
  // Only to 0 or the current length: evicted keys are gone.
  bool rewind(int seq, int64_t length) override;

  // The kept keys of one layer and sequence in slot order (n_keys = n_kept), with their absolute
  // positions and accumulated scores per head.
  kernels::KvView view(int64_t layer, int seq) const;
  std::span<const int32_t> positions(int64_t layer, int seq, int64_t kv_head) const;
  std::span<const float> scores(int64_t layer, int seq, int64_t kv_head) const;

 private:
  struct Slots;    // pointers into one (layer, sequence) slab or a scratch copy
  struct Scratch;  // candidates of a step that do not fit the slab
  Slots slab(int64_t layer, int seq);
  size_t slab_index(int64_t layer, int seq) const;
  void check_layer_seq(int64_t layer, int seq) const;
  void evict(Slots& candidates, Slots& kept, int64_t n_candidates);

  KvShape shape_;
  int64_t budget_ = 0;            // keys kept per KV head, 1 .. n_ctx
  int64_t capacity_ = 0;          // slots per head: budget + 1, at most n_ctx
  HugePageVector<uint8_t> keys_;  // huge pages: decode streams the whole cache
  HugePageVector<uint8_t> values_;
  std::vector<int32_t> positions_;
  std::vector<float> scores_;
  std::vector<int64_t> lengths_;
  std::unique_ptr<Scratch> scratch_;
};

}  // namespace moa
