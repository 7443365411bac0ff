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

#include "engine/model_config.h"
#include "kernels/kernels.h"
#include "kv/attention_cache.h"
#include "plan/plan.h"
#include "util/huge_pages.h"

namespace moa {

inline constexpr int64_t kDefaultRingChunk = 256;  // tokens per prefill call (chunk buffer size)

struct StaticKvCacheShape {
  int64_t n_layer = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t n_ctx = 0;                          // N: prompt + max new tokens, spans use S_h(N)
  int64_t prefill_chunk = kDefaultRingChunk;  // most tokens one attend call may bring
  int n_seq = 1;
  kernels::KvType type = kernels::KvType::kF16;
};

StaticKvCacheShape static_kv_cache_shape(const ModelConfig& config, int64_t n_ctx,
                                         int64_t prefill_chunk, int n_seq, kernels::KvType type);

// Ring slots of a head: its span (the newest query's band), but no more than the positions >=
// sinks that a sequence of n_ctx tokens has. Sinks + ring = min(n_ctx, sinks + span) keys.
int64_t ring_slots(int64_t span, int64_t sinks, int64_t n_ctx);

class StaticKvCache final : public AttentionCache {
 public:
  // Allocates every ring once. Throws moa::Error when the shape is not positive, the plan's
  // layer/KV-head counts differ from the shape, or a rule gives an invalid span at n_ctx.
  // Sinks beyond n_ctx are allowed (every key is then a sink).
  StaticKvCache(const StaticKvCacheShape& shape, const SparsePlan& plan);

  const StaticKvCacheShape& shape() const { return shape_; }
  int n_seq() const override { return shape_.n_seq; }
  int64_t n_ctx() const override { return shape_.n_ctx; }
  uint64_t bytes() const override;  // slots, the chunk buffer and the per-head bookkeeping
  int64_t length(int seq) const override;
  void check_room(int seq, int64_t n_new) const override;
  int64_t max_chunk() const override { return shape_.prefill_chunk; }

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

 private:
  void check_layer_seq(int64_t layer, int seq) const;
  void check_chunk(int64_t layer, int seq, int64_t pos, int64_t n_tokens) const;
  // True when writing the chunk first overwrites no key its queries need (always for one token).
  bool rings_hold_chunk(int64_t layer, int64_t pos, int64_t n_tokens) const;
  // Slot of position p of a head (a sink slot or a ring slot).
  int64_t slot_of(int64_t layer, int64_t kv_head, int64_t p) const;
  // Calls write(h, t, key_slot, value_slot) for every row of the chunk the slots keep.
  template <class Write>
  void write_kept_rows(int64_t layer, int seq, int64_t pos, int64_t n_tokens, Write write);
  void stage_chunk(int64_t n_tokens, const float* k, const float* v);
  size_t head_offset(int64_t layer, int seq, int64_t kv_head) const;  // elements
  const void* element_address(const HugePageVector<uint8_t>& buffer, size_t element) const;

  StaticKvCacheShape shape_;
  int64_t sinks_ = 0;
  size_t element_bytes_ = 2;
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
