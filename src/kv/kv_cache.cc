// Dense KV cache storage (see kv_cache.h): one contiguous slab per (layer, sequence), keys and
// values in separate buffers, F16 conversion on store so attention reads half the bytes.
#include "kv/kv_cache.h"

#include <algorithm>
#include <cctype>
#include <span>
#include <string>
#include <utility>

#include "util/checked_math.h"
#include "util/error.h"

namespace moa {

KvCacheShape kv_cache_shape(const ModelConfig& config, int64_t n_ctx, int n_seq,
                            kernels::KvType type) {
  KvCacheShape shape;
  shape.n_layer = config.n_layer;
  shape.n_head_kv = config.n_head_kv;
  shape.head_dim = config.head_dim;
  shape.n_ctx = n_ctx;
  shape.n_seq = n_seq;
  shape.type = type;
  return shape;
}

KvCache::KvCache(const KvCacheShape& shape) : shape_(shape) {
  check_cache_dimensions("kv cache", shape.n_layer, shape.n_head_kv, shape.head_dim, shape.n_ctx,
                         shape.n_seq);
  element_bytes_ = kernels::kv_element_bytes(shape.type);
  const uint64_t bytes =
      checked_product("kv cache", {shape.n_layer, shape.n_seq, shape.n_head_kv, shape.n_ctx,
                                   shape.head_dim, static_cast<int64_t>(element_bytes_)});
  keys_.assign(bytes, 0);
  values_.assign(bytes, 0);
  lengths_.assign(static_cast<size_t>(shape.n_seq), 0);
}

uint64_t KvCache::bytes_for(const KvCacheShape& shape) {
  const auto elements = static_cast<uint64_t>(shape.n_layer) * static_cast<uint64_t>(shape.n_seq) *
                        static_cast<uint64_t>(shape.n_head_kv * shape.n_ctx * shape.head_dim);
  return 2 * elements * kernels::kv_element_bytes(shape.type) +
         static_cast<uint64_t>(shape.n_seq) * sizeof(int64_t);
}

uint64_t KvCache::bytes() const {
  return heap_bytes(keys_) + heap_bytes(values_) + heap_bytes(lengths_) + heap_bytes(masks_);
}

void KvCache::check_seq(int seq) const {
  if (seq < 0 || seq >= shape_.n_seq) {
    fail("kv cache: sequence {} does not exist (cache holds {})", seq, shape_.n_seq);
  }
}

int64_t KvCache::length(int seq) const {
  check_seq(seq);
  return lengths_[static_cast<size_t>(seq)];
}

void KvCache::check_room(int seq, int64_t n_new) const {
  check_context_room(seq, length(seq), n_new, shape_.n_ctx, "raise -c");
}

size_t KvCache::slab_offset(int64_t layer, int seq) const {
  const size_t slab = static_cast<size_t>(shape_.n_head_kv * shape_.n_ctx * shape_.head_dim);
  return (static_cast<size_t>(layer) * static_cast<size_t>(shape_.n_seq) +
          static_cast<size_t>(seq)) *
         slab;
}

void KvCache::store(int64_t layer, int seq, int64_t pos, int64_t n_tokens, const float* k,
                    const float* v) {
  check_seq(seq);
  if (layer < 0 || layer >= shape_.n_layer) fail("kv cache: layer {} does not exist", layer);
  if (pos < 0 || pos + n_tokens > shape_.n_ctx) {
    fail("context is full: positions {} .. {} do not fit in the context of {} (raise -c)", pos,
         pos + n_tokens - 1, shape_.n_ctx);
  }
  const int64_t head_dim = shape_.head_dim;
  const int64_t kv_dim = shape_.n_head_kv * head_dim;
  const size_t base = slab_offset(layer, seq);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t h = 0; h < shape_.n_head_kv; ++h) {
      const size_t dst = base + static_cast<size_t>((h * shape_.n_ctx + pos + t) * head_dim);
      store_kv_row(k + t * kv_dim + h * head_dim, head_dim, shape_.type,
                   keys_.data() + dst * element_bytes_);
      store_kv_row(v + t * kv_dim + h * head_dim, head_dim, shape_.type,
                   values_.data() + dst * element_bytes_);
    }
  }
}

void KvCache::set_length(int seq, int64_t length) {
  check_seq(seq);
  if (length < 0 || length > shape_.n_ctx) {
    fail("context is full: length {} exceeds the context of {} (raise -c)", length, shape_.n_ctx);
  }
  lengths_[static_cast<size_t>(seq)] = length;
}

void KvCache::use_plan(const SparsePlan& plan, int64_t span_length) {
  if (static_cast<int64_t>(plan.rules.size()) != shape_.n_layer) {
    fail("kv cache: plan has {} layers, the model has {}", plan.rules.size(), shape_.n_layer);
  }
  std::vector<std::vector<kernels::BandMask>> masks;
  for (int64_t layer = 0; layer < shape_.n_layer; ++layer) {
    masks.push_back(plan.band_masks(layer, span_length));
    if (static_cast<int64_t>(masks.back().size()) != shape_.n_head_kv) {
      fail("kv cache: plan has {} KV heads per layer, the model has {}", masks.back().size(),
           shape_.n_head_kv);
    }
  }
  masks_ = std::move(masks);
}

void KvCache::attend(int64_t layer, int seq, int64_t pos, int64_t n_tokens,
                     const kernels::AttentionShape& shape, const float* q, const float* k,
                     const float* v, float* out, int n_threads) {
  store(layer, seq, pos, n_tokens, k, v);
  const std::span<const kernels::BandMask> masks =
      masks_.empty() ? std::span<const kernels::BandMask>() : masks_[static_cast<size_t>(layer)];
  kernels::attention(shape, q, n_tokens, pos, view(layer, seq, pos + n_tokens), masks, out,
                     n_threads);
}

void KvCache::clear_all() { std::fill(lengths_.begin(), lengths_.end(), 0); }

kernels::KvView KvCache::view(int64_t layer, int seq, int64_t n_keys) const {
  check_seq(seq);
  if (layer < 0 || layer >= shape_.n_layer) fail("kv cache: layer {} does not exist", layer);
  if (n_keys < 0 || n_keys > shape_.n_ctx) {
    fail("kv cache: {} keys exceed the context of {}", n_keys, shape_.n_ctx);
  }
  const size_t offset = slab_offset(layer, seq) * element_bytes_;
  kernels::KvView view;
  view.type = shape_.type;
  view.k = keys_.data() + offset;
  view.v = values_.data() + offset;
  view.head_stride = shape_.n_ctx * shape_.head_dim;
  view.n_keys = n_keys;
  return view;
}

const char* kv_type_name(kernels::KvType type) {
  return type == kernels::KvType::kF16 ? "f16" : "f32";
}

kernels::KvType parse_kv_type(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "f32") return kernels::KvType::kF32;
  if (lower == "f16") return kernels::KvType::kF16;
  fail("--kv-type: '{}' is not a KV cache type (expected f32 or f16)", name);
}

}  // namespace moa
