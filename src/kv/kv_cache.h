// Dense KV cache: keys and values of every layer for several sequences, stored F32 or F16 in the
// layout attention reads directly (kernels::KvView: [kv_head][position][head_dim]). Each sequence
// has its own slab of n_ctx positions, so sequences of a batch never interfere. With a sparse
// plan attached (use_plan) it runs the plan's masks over the dense layout: sparse prefill that
// keeps every key (the per-head ring cache that also saves memory is StaticKvCache).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "kv/attention_cache.h"
#include "kv/kv_shape.h"
#include "plan/plan.h"
#include "util/huge_pages.h"

namespace moa {

class KvCache final : public AttentionCache {
 public:
  // Allocates the whole cache up front; throws moa::Error on a non-positive size.
  explicit KvCache(const KvShape& shape);

  const KvShape& shape() const { return shape_; }
  int64_t n_ctx() const override { return shape_.n_ctx; }
  int n_seq() const override { return shape_.n_seq; }
  uint64_t bytes() const override;  // bytes_for(shape) plus the plan's masks
  // What a dense cache of this shape allocates (keys, values, lengths), without building one.
  static uint64_t bytes_for(const KvShape& shape);
  int64_t max_chunk() const override { return shape_.n_ctx; }

  // Positions 0 .. length(seq)-1 hold valid keys and values.
  int64_t length(int seq) const override;
  // Throws "context is full: ..." when n_new more positions do not fit in sequence `seq`.
  void check_room(int seq, int64_t n_new) const override;
  // Writes keys/values of n_tokens tokens at positions pos .. pos+n_tokens-1 of layer `layer`;
  // k and v are [n_tokens][n_head_kv * head_dim] (the projection output layout).
  void store(int64_t layer, int seq, int64_t pos, int64_t n_tokens, const float* k, const float* v);
  // Marks positions up to `length` valid (after all layers stored them), or truncates.
  void set_length(int seq, int64_t length) override;
  void fill(int seq, int64_t length, std::span<const float> k, std::span<const float> v) override;
  bool rewind(int seq, int64_t length) override;  // always possible: every key stays

  // Attention from now on uses the plan's masks with spans at span_length (the planned
  // prompt + new tokens); throws if the plan's layer/KV-head counts differ from the cache's.
  void use_plan(const SparsePlan& plan, int64_t span_length);
  // store, then flash attention over positions 0 .. pos+n_tokens-1 (masked if a plan is set).
  void attend(int64_t layer, int seq, int64_t pos, int64_t n_tokens,
              const kernels::AttentionShape& shape, const float* q, const float* k, const float* v,
              float* out, int n_threads) override;

  // The keys 0 .. n_keys-1 of one layer and sequence, as attention reads them.
  kernels::KvView view(int64_t layer, int seq, int64_t n_keys) const;

 private:
  size_t slab_offset(int64_t layer, int seq) const;  // element offset of a (layer, seq) slab
  void check_seq(int seq) const;

  KvShape shape_;
  HugePageVector<uint8_t> keys_;  // huge pages: decode streams the whole cache
  HugePageVector<uint8_t> values_;
  std::vector<int64_t> lengths_;
  std::vector<std::vector<kernels::BandMask>> masks_;  // [layer][kv_head]; empty: dense
};

const char* kv_type_name(kernels::KvType type);
// "f32" / "f16" (case-insensitive); throws naming the accepted values otherwise.
kernels::KvType parse_kv_type(const std::string& name);

}  // namespace moa
