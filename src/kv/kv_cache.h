// Dense KV cache: keys and values of every layer for several sequences, stored F32 or F16 in the
// layout attention reads directly (kernels::KvView: [kv_head][position][head_dim]). Each sequence
// has its own slab of n_ctx positions, so sequences of a batch never interfere. A sparse cache
// (per-head rings, issue #5) can offer the same store/view operations with a different layout.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "model/model_config.h"

namespace moa {

struct KvCacheShape {
  int64_t n_layer = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t n_ctx = 0;  // positions per sequence
  int n_seq = 1;
  kernels::KvType type = kernels::KvType::kF32;
};

KvCacheShape kv_cache_shape(const ModelConfig& config, int64_t n_ctx, int n_seq,
                            kernels::KvType type);

class KvCache {
 public:
  // Allocates the whole cache up front; throws moa::Error on a non-positive size.
  explicit KvCache(const KvCacheShape& shape);

  const KvCacheShape& shape() const { return shape_; }
  int64_t n_ctx() const { return shape_.n_ctx; }
  int n_seq() const { return shape_.n_seq; }
  uint64_t bytes() const;

  // Positions 0 .. length(seq)-1 hold valid keys and values.
  int64_t length(int seq) const;
  // Throws "context is full: ..." when n_new more positions do not fit in sequence `seq`.
  void check_room(int seq, int64_t n_new) const;
  // Writes keys/values of n_tokens tokens at positions pos .. pos+n_tokens-1 of layer `layer`;
  // k and v are [n_tokens][n_head_kv * head_dim] (the projection output layout).
  void store(int64_t layer, int seq, int64_t pos, int64_t n_tokens, const float* k, const float* v);
  // Marks positions up to `length` valid (after all layers stored them), or truncates.
  void set_length(int seq, int64_t length);
  void clear(int seq) { set_length(seq, 0); }
  void clear_all();

  // The keys 0 .. n_keys-1 of one layer and sequence, as attention reads them.
  kernels::KvView view(int64_t layer, int seq, int64_t n_keys) const;

 private:
  size_t slab_offset(int64_t layer, int seq) const;  // element offset of a (layer, seq) slab
  void check_seq(int seq) const;

  KvCacheShape shape_;
  size_t element_bytes_ = 4;
  std::vector<uint8_t> keys_;
  std::vector<uint8_t> values_;
  std::vector<int64_t> lengths_;
};

const char* kv_type_name(kernels::KvType type);
// "f32" / "f16" (case-insensitive); throws naming the accepted values otherwise.
kernels::KvType parse_kv_type(const std::string& name);

}  // namespace moa
