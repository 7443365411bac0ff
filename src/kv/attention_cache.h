// The one interface the forward pass attends through, so one engine runs every KV policy:
// the dense KvCache (optionally with a sparse plan's masks), the static per-head ring cache of
// a MoA/StreamingLLM plan (StaticKvCache) and H2O's eviction cache. A cache receives each
// layer's new keys/values together with the queries, so it decides where keys live, which it
// keeps, and which attention weights it needs (H2O accumulates them inside attend, see
// kernels/attention_weights.h) without the forward pass knowing.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/kernels.h"
#include "kv/kv_shape.h"

namespace moa {

// Throws "context is full: ..." unless n_new more positions fit after `used` in `n_ctx`;
// `hint` tells the user which option raises the limit.
void check_context_room(int seq, int64_t used, int64_t n_new, int64_t n_ctx, const char* hint);

// Checks the rows handed to AttentionCache::fill (k and v of the same whole number of
// [kv_dim] rows, at least one; length within 0 .. n_ctx) and returns how many rows there are.
int64_t fill_rows(const char* what, const KvShape& shape, int64_t length, std::span<const float> k,
                  std::span<const float> v);

// Heap bytes a vector holds, so bytes() can count a cache's bookkeeping beside its keys.
template <class T, class Alloc>
uint64_t heap_bytes(const std::vector<T, Alloc>& v) {
  return v.capacity() * sizeof(T);
}
template <class T>
uint64_t heap_bytes(const std::vector<std::vector<T>>& v) {
  uint64_t total = v.capacity() * sizeof(std::vector<T>);
  for (const std::vector<T>& inner : v) total += heap_bytes(inner);
  return total;
}

class AttentionCache {
 public:
  virtual ~AttentionCache() = default;

  virtual int n_seq() const = 0;
  // Positions a sequence may reach (prompt + generated tokens).
  virtual int64_t n_ctx() const = 0;
  // Every byte the cache holds on the heap: keys, values, scratch buffers and bookkeeping.
  virtual uint64_t bytes() const = 0;
  // Positions 0 .. length(seq)-1 have been processed.
  virtual int64_t length(int seq) const = 0;
  // Throws "context is full: ..." when n_new more positions do not fit in sequence `seq`.
  virtual void check_room(int seq, int64_t n_new) const = 0;
  // Most new tokens of one sequence one attend call may bring (a ring must hold them all).
  virtual int64_t max_chunk() const = 0;

  // One layer's attention for n_tokens new tokens of `seq` at positions pos .. pos+n_tokens-1:
  // q is [n_tokens][n_head][head_dim] after RoPE, k and v are [n_tokens][n_head_kv * head_dim];
  // stores k/v and writes out [n_tokens][n_head][head_dim].
  virtual void attend(int64_t layer, int seq, int64_t pos, int64_t n_tokens,
                      const kernels::AttentionShape& shape, const float* q, const float* k,
                      const float* v, float* out, int n_threads) = 0;
  // Advances the length after every layer attended (or clears with 0).
  virtual void set_length(int seq, int64_t length) = 0;

  // Makes `seq` hold `length` positions in every layer as if they had been attended, position p
  // taking row p % n_rows of k and v ([n_rows][n_head_kv * head_dim]); H2O keeps the newest
  // min(length, budget) with zero scores. Lets a benchmark or test start at any depth without a
  // prefill. Throws when length exceeds the context or no rows are given; a cache that stores
  // no keys (the profiler's one-pass attention) keeps this default, which throws.
  virtual void fill(int seq, int64_t length, std::span<const float> k, std::span<const float> v);
  // Shortens `seq` to `length` positions so the ones after it can be attended again (the keys a
  // ring overwrote stay overwritten); returns false, changing nothing, when the cache cannot
  // (H2O has evicted keys for good: fill it again instead). The default cannot.
  virtual bool rewind(int seq, int64_t length);
};

}  // namespace moa
