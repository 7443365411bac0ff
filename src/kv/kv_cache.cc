// Dense KV cache storage (see kv_cache.h): one contiguous slab per (layer, sequence), keys and
// values in separate buffers, F16 conversion on store so attention reads half the bytes.
#include "kv/kv_cache.h"

#include <algorithm>
#include <cctype>
#include <span>
#include <string>
#include <utility>

#include "kv/plan_masks.h"
#include "util/checked_math.h"
#include "util/error.h"
#include "util/input_error.h"

namespace moa {

KvCache::KvCache(const KvShape& shape) : shape_(shape) {
  check_kv_shape("kv cache", shape);
  const uint64_t bytes =
      checked_product("kv cache", {shape.n_layer, shape.n_seq, shape.n_head_kv, shape.n_ctx,
                                   static_cast<int64_t>(shape.row_bytes())});
  keys_.assign(bytes, 0);
  values_.assign(bytes, 0);
  lengths_.assign(static_cast<size_t>(shape.n_seq), 0);
}

uint64_t KvCache::bytes_for(const KvShape& shape) {
  const auto elements = static_cast<uint64_t>(shape.n_layer) * static_cast<uint64_t>(shape.n_seq) *
                        static_cast<uint64_t>(shape.n_head_kv * shape.n_ctx * shape.head_dim);
  return 2 * kernels::kv_bytes(shape.type, static_cast<int64_t>(elements), shape.head_dim) +
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
  check_context_room(seq, length(seq), n_new, shape_.n_ctx, "the context the cache was sized for");
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
    fail("context is full: positions {} .. {} do not fit in the context of {}", pos,
         pos + n_tokens - 1, shape_.n_ctx);
  }
  const int64_t head_dim = shape_.head_dim;
  const size_t base = slab_offset(layer, seq);
  for (int64_t h = 0; h < shape_.n_head_kv; ++h) {
    const size_t dst =
        shape_.bytes_of(static_cast<int64_t>(base) + (h * shape_.n_ctx + pos) * head_dim);
    store_kv_rows(k + h * head_dim, shape_.kv_dim(), n_tokens, head_dim, shape_.type,
                  keys_.data() + dst);
    store_kv_rows(v + h * head_dim, shape_.kv_dim(), n_tokens, head_dim, shape_.type,
                  values_.data() + dst);
  }
}

void KvCache::set_length(int seq, int64_t length) {
  check_seq(seq);
  if (length < 0 || length > shape_.n_ctx) {
    fail("context is full: length {} exceeds the context of {}", length, shape_.n_ctx);
  }
  lengths_[static_cast<size_t>(seq)] = length;
}

void KvCache::use_plan(const SparsePlan& plan, int64_t span_length) {
  if (static_cast<int64_t>(plan.rules.size()) != shape_.n_layer) {
    fail("kv cache: plan has {} layers, the model has {}", plan.rules.size(), shape_.n_layer);
  }
  std::vector<std::vector<kernels::BandMask>> masks;
  for (int64_t layer = 0; layer < shape_.n_layer; ++layer) {
    masks.push_back(band_masks(plan, layer, span_length));
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

void KvCache::fill(int seq, int64_t length, std::span<const float> k, std::span<const float> v) {
  check_seq(seq);
  const int64_t n_rows = fill_rows("kv cache", shape_, length, k, v);
  for (int64_t layer = 0; layer < shape_.n_layer; ++layer) {
    for (int64_t pos = 0; pos < length;) {
      const int64_t row = pos % n_rows;
      const int64_t n = std::min(length - pos, n_rows - row);
      store(layer, seq, pos, n, k.data() + row * shape_.kv_dim(), v.data() + row * shape_.kv_dim());
      pos += n;
    }
  }
  set_length(seq, length);
}

bool KvCache::rewind(int seq, int64_t length) {
  set_length(seq, length);
  return true;
}

kernels::KvView KvCache::view(int64_t layer, int seq, int64_t n_keys) const {
  check_seq(seq);
  if (layer < 0 || layer >= shape_.n_layer) fail("kv cache: layer {} does not exist", layer);
  if (n_keys < 0 || n_keys > shape_.n_ctx) {
    fail("kv cache: {} keys exceed the context of {}", n_keys, shape_.n_ctx);
  }
  const size_t offset = shape_.bytes_of(static_cast<int64_t>(slab_offset(layer, seq)));
  kernels::KvView view;
  view.type = shape_.type;
  view.k = keys_.data() + offset;
  view.v = values_.data() + offset;
  view.head_stride = shape_.n_ctx * shape_.head_dim;
  view.n_keys = n_keys;
  return view;
}

const char* kv_type_name(kernels::KvType type) {
  switch (type) {
    case kernels::KvType::kF16:
      return "f16";
    case kernels::KvType::kQ8_0:
      return "q8_0";
    case kernels::KvType::kF32:
      break;
  }
  return "f32";
}

kernels::KvType parse_kv_type(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "f32") return kernels::KvType::kF32;
  if (lower == "f16") return kernels::KvType::kF16;
  if (lower == "q8_0") return kernels::KvType::kQ8_0;
  fail_input("kv type", "'{}' is not a KV cache type (expected f32, f16 or q8_0)", name);
}

}  // namespace moa
