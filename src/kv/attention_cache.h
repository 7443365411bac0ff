// The one interface the forward pass attends through, so one engine runs every KV policy:
// the dense KvCache (optionally with a sparse plan's masks), the static per-head ring cache of
// a MoA/StreamingLLM plan (StaticKvCache) and H2O's eviction cache. A cache receives each
// layer's new keys/values together with the queries, so it decides where keys live, which it
// keeps, and which attention weights it needs (H2O accumulates them inside attend, see
// kernels/attention_weights.h) without the forward pass knowing.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernels.h"

namespace moa {

// Throws "context is full: ..." unless n_new more positions fit after `used` in `n_ctx`;
// `hint` tells the user which option raises the limit.
void check_context_room(int seq, int64_t used, int64_t n_new, int64_t n_ctx, const char* hint);

// Throws "<what>: ..." unless every dimension of a cache (layers, KV heads, head size, context,
// sequences) is positive.
void check_cache_dimensions(const char* what, int64_t n_layer, int64_t n_head_kv, int64_t head_dim,
                            int64_t n_ctx, int n_seq);

// Writes one key or value row of n floats as the cache stores it (F32 copy or F16 rounding).
void store_kv_row(const float* src, int64_t n, kernels::KvType type, void* dst);

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
};

}  // namespace moa
