// Static per-head KV cache for a sparse plan (METHOD.md s.5): each sequence, layer and KV head
// owns min(G, N) sink slots and a ring of min(S_h, N - G) slots, sized once from the head's span
// at the planned length N = prompt + max new tokens: exactly the keys the head can still need, so
// bytes() ~ KV density x dense at every N. Position p < G lives in sink slot p, p >= G in ring
// slot (p - G) % R_h. A prefill chunk that would overwrite keys its own queries still need is
// converted once into a chunk buffer shared by every layer and sequence, attended from there
// beside the sinks and ring pieces, and only then written to the ring (its newest R_h positions);
// other calls (every decode step) are written first and attended in place. With the plan's masks
// on absolute positions, chunked prefill and decode are exactly the masked attention.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernels.h"
#include "kv/attention_cache.h"
#include "kv/kv_shape.h"
#include "plan/plan.h"
#include "util/huge_pages.h"

namespace moa {

inline constexpr int64_t kDefaultRingChunk = 256;  // tokens per prefill call (chunk buffer size)

// Ring slots of a head: its span (the newest query's band), but no more than the positions >=
// sinks that a sequence of n_ctx tokens has. Sinks + ring = min(n_ctx, sinks + span) keys.
int64_t ring_slots(int64_t span, int64_t sinks, int64_t n_ctx);

class StaticKvCache final : public AttentionCache {
 public:
  // Allocates every ring once; shape.n_ctx is the planned N (prompt + max new tokens: spans are
  // S_h(N)) and one attend call brings at most prefill_chunk tokens. Throws moa::Error when the
  // shape or chunk is not positive, the plan's layer/KV-head counts differ from the shape, or a
  // rule gives an invalid span at n_ctx. Sinks beyond n_ctx are allowed (every key is a sink).
  StaticKvCache(const KvShape& shape, const SparsePlan& plan,
                int64_t prefill_chunk = kDefaultRingChunk);

  const KvShape& shape() const { return shape_; }
  int n_seq() const override { return shape_.n_seq; }
  int64_t n_ctx() const override { return shape_.n_ctx; }
  uint64_t bytes() const override;  // slots, the chunk buffer and the per-head bookkeeping
  int64_t length(int seq) const override;
  void check_room(int seq, int64_t n_new) const override;
  int64_t max_chunk() const override { return prefill_chunk_; }

  int64_t sink_slots() const { return sinks_; }  // min(plan sinks, n_ctx)
  int64_t span(int64_t layer, int64_t kv_head) const;
  int64_t ring_size(int64_t layer, int64_t kv_head) const;
  const std::vector<kernels::BandMask>& masks(int64_t layer) const;

  // Writes keys/values of positions pos .. pos+n_tokens-1 (n_tokens <= prefill_chunk) of one
  // layer; k and v are [n_tokens][n_head_kv * head_dim]. Only what the slots keep is written
  // (sinks, the newest ring positions), so attention assumes positions arrive in order.
  void store(int64_t layer, int seq, int64_t pos, int64_t n_tokens, const float* k, const float* v);
  // The runs over stored keys (sink slots, ring pieces) at positions < stored_end that queries
  // from position q_pos on may see.
  std::vector<kernels::KeyRun> key_runs(int64_t layer, int seq, int64_t q_pos,
                                        int64_t stored_end) const;
  void attend(int64_t layer, int seq, int64_t pos, int64_t n_tokens,
              const kernels::AttentionShape& shape, const float* q, const float* k, const float* v,
              float* out, int n_threads) override;
  // Any length up to n_ctx; a shorter length does not restore keys a ring has overwritten.
  void set_length(int seq, int64_t length) override;
  void fill(int seq, int64_t length, std::span<const float> k, std::span<const float> v) override;
  bool rewind(int seq, int64_t length) override;  // always possible (set_length)

 private:
  void check_layer_seq(int64_t layer, int seq) const;
  void check_chunk(int64_t layer, int seq, int64_t pos, int64_t n_tokens) const;
  // True when writing the chunk first overwrites no key its queries need (always for one token).
  bool rings_hold_chunk(int64_t layer, int64_t pos, int64_t n_tokens) const;
  // Calls write(h, t0, n, element) for every run of chunk rows t0 .. t0+n-1 of head h the slots
  // keep, which go to consecutive slots from element offset `element` on.
  template <class Write>
  void write_kept_runs(int64_t layer, int seq, int64_t pos, int64_t n_tokens, Write write);
  void stage_chunk(int64_t n_tokens, const float* k, const float* v);
  size_t head_offset(int64_t layer, int seq, int64_t kv_head) const;  // elements
  const void* element_address(const HugePageVector<uint8_t>& buffer, size_t element) const;

  KvShape shape_;
  int64_t prefill_chunk_ = kDefaultRingChunk;
  int64_t sinks_ = 0;
  std::vector<std::vector<kernels::BandMask>> masks_;  // [layer][kv_head]
  std::vector<int64_t> ring_;                          // [layer * n_head_kv + kv_head]
  std::vector<size_t> offsets_;   // element offset of each (layer, head) within a sequence
  size_t seq_elements_ = 0;       // elements per sequence
  HugePageVector<uint8_t> keys_;  // huge pages: decode streams the whole cache
  HugePageVector<uint8_t> values_;
  std::vector<uint8_t> chunk_keys_;  // [kv_head][chunk token][head_dim], shared by every layer
  std::vector<uint8_t> chunk_values_;
  int64_t chunk_capacity_ = 0;  // tokens per head in the chunk buffer
  std::vector<int64_t> lengths_;
};

}  // namespace moa
