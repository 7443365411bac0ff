// Static per-head ring KV cache (see static_kv_cache.h). Each sequence is one region holding,
// per layer and KV head, [sinks + ring] key slots then the same for values in a second buffer;
// heads have rings of different sizes, so attention gets explicit per-head key runs rather
// than a strided view, and one kernel launch still covers every head of a layer. The chunk
// buffer is laid out per head, so each head's new keys are one more run of that launch.
#include "kv/static_kv_cache.h"

#include <algorithm>
#include <cstring>

#include "kv/plan_masks.h"
#include "util/checked_math.h"
#include "util/error.h"

namespace moa {
namespace {

void check_shape(const KvShape& s, const SparsePlan& plan, int64_t prefill_chunk) {
  check_kv_shape("static kv cache", s);
  if (prefill_chunk <= 0) fail("static kv cache: prefill chunk {}: expected > 0", prefill_chunk);
  if (static_cast<int64_t>(plan.rules.size()) != s.n_layer) {
    fail("static kv cache: plan has {} layers, the model has {}", plan.rules.size(), s.n_layer);
  }
  for (const auto& layer : plan.rules) {
    if (static_cast<int64_t>(layer.size()) != s.n_head_kv) {
      fail("static kv cache: plan has {} KV heads per layer, the model has {}", layer.size(),
           s.n_head_kv);
    }
  }
  if (plan.sinks < 0) fail("static kv cache: plan sinks {}: expected >= 0", plan.sinks);
}

}  // namespace

int64_t ring_slots(int64_t span, int64_t sinks, int64_t n_ctx) {
  return std::min(span, std::max<int64_t>(0, n_ctx - sinks));
}

StaticKvCache::StaticKvCache(const KvShape& shape, const SparsePlan& plan, int64_t prefill_chunk)
    : shape_(shape), prefill_chunk_(prefill_chunk) {
  check_shape(shape, plan, prefill_chunk);
  sinks_ = std::min(plan.sinks, shape.n_ctx);  // sink slots; the masks keep the plan's G
  size_t offset = 0;
  masks_.reserve(static_cast<size_t>(shape.n_layer));
  ring_.reserve(static_cast<size_t>(shape.n_layer * shape.n_head_kv));
  offsets_.reserve(ring_.capacity());
  for (int64_t layer = 0; layer < shape.n_layer; ++layer) {
    masks_.push_back(band_masks(plan, layer, shape.n_ctx));
    for (const kernels::BandMask& mask : masks_.back()) {
      ring_.push_back(ring_slots(mask.span, sinks_, shape.n_ctx));
      offsets_.push_back(offset);
      offset += checked_product("static kv cache", {sinks_ + ring_.back(), shape.head_dim});
    }
  }
  seq_elements_ = offset;
  const size_t total =
      checked_product("static kv cache", {static_cast<int64_t>(seq_elements_) / shape.head_dim,
                                          shape.n_seq, static_cast<int64_t>(shape.row_bytes())});
  keys_.assign(total, 0);
  values_.assign(total, 0);
  chunk_capacity_ = std::min(prefill_chunk, shape.n_ctx);
  const size_t chunk_bytes =
      checked_product("static kv cache",
                      {chunk_capacity_, shape.n_head_kv, static_cast<int64_t>(shape.row_bytes())});
  chunk_keys_.assign(chunk_bytes, 0);
  chunk_values_.assign(chunk_bytes, 0);
  lengths_.assign(static_cast<size_t>(shape.n_seq), 0);
}

uint64_t StaticKvCache::bytes() const {
  return heap_bytes(keys_) + heap_bytes(values_) + heap_bytes(chunk_keys_) +
         heap_bytes(chunk_values_) + heap_bytes(masks_) + heap_bytes(ring_) + heap_bytes(offsets_) +
         heap_bytes(lengths_);
}

void StaticKvCache::check_layer_seq(int64_t layer, int seq) const {
  if (seq < 0 || seq >= shape_.n_seq) {
    fail("static kv cache: sequence {} does not exist (cache holds {})", seq, shape_.n_seq);
  }
  if (layer < 0 || layer >= shape_.n_layer) fail("static kv cache: layer {} does not exist", layer);
}

int64_t StaticKvCache::length(int seq) const {
  check_layer_seq(0, seq);
  return lengths_[static_cast<size_t>(seq)];
}

void StaticKvCache::check_room(int seq, int64_t n_new) const {
  check_context_room(seq, length(seq), n_new, shape_.n_ctx,
                     "the cache was planned for prompt + new tokens");
}

int64_t StaticKvCache::span(int64_t layer, int64_t kv_head) const {
  return masks(layer).at(static_cast<size_t>(kv_head)).span;
}

int64_t StaticKvCache::ring_size(int64_t layer, int64_t kv_head) const {
  check_layer_seq(layer, 0);
  return ring_.at(static_cast<size_t>(layer * shape_.n_head_kv + kv_head));
}

const std::vector<kernels::BandMask>& StaticKvCache::masks(int64_t layer) const {
  check_layer_seq(layer, 0);
  return masks_[static_cast<size_t>(layer)];
}

size_t StaticKvCache::head_offset(int64_t layer, int seq, int64_t kv_head) const {
  return static_cast<size_t>(seq) * seq_elements_ +
         offsets_[static_cast<size_t>(layer * shape_.n_head_kv + kv_head)];
}

const void* StaticKvCache::element_address(const HugePageVector<uint8_t>& buffer,
                                           size_t element) const {
  return buffer.data() + shape_.bytes_of(static_cast<int64_t>(element));
}

void StaticKvCache::check_chunk(int64_t layer, int seq, int64_t pos, int64_t n_tokens) const {
  check_layer_seq(layer, seq);
  if (n_tokens < 0 || n_tokens > prefill_chunk_) {
    fail("static kv cache: {} tokens in one call; the cache takes chunks of at most {}", n_tokens,
         prefill_chunk_);
  }
  if (pos < 0 || pos + n_tokens > shape_.n_ctx) {
    fail("context is full: positions {} .. {} do not fit in the {} the cache was planned for", pos,
         pos + n_tokens - 1, shape_.n_ctx);
  }
}

template <class Write>
void StaticKvCache::write_kept_runs(int64_t layer, int seq, int64_t pos, int64_t n_tokens,
                                    Write write) {
  const int64_t hd = shape_.head_dim, end = pos + n_tokens;
  for (int64_t h = 0; h < shape_.n_head_kv; ++h) {
    const size_t base = head_offset(layer, seq, h);
    const int64_t ring = ring_size(layer, h);
    const int64_t sink_end = std::min(end, sinks_);
    if (pos < sink_end) write(h, 0, sink_end - pos, base + static_cast<size_t>(pos * hd));
    // Older positions of the chunk would be overwritten by newer ones within this call; the
    // rest run in slot order up to the ring's end, then wrap once.
    for (int64_t p = std::max({pos, sinks_, end - ring}); p < end;) {
      const int64_t slot = (p - sinks_) % ring;
      const int64_t n = std::min(end - p, ring - slot);
      write(h, p - pos, n, base + static_cast<size_t>((sinks_ + slot) * hd));
      p += n;
    }
  }
}

void StaticKvCache::store(int64_t layer, int seq, int64_t pos, int64_t n_tokens, const float* k,
                          const float* v) {
  check_chunk(layer, seq, pos, n_tokens);
  const int64_t hd = shape_.head_dim, kv_dim = shape_.kv_dim();
  write_kept_runs(layer, seq, pos, n_tokens, [&](int64_t h, int64_t t0, int64_t n, size_t at) {
    const int64_t src = t0 * kv_dim + h * hd;
    store_kv_rows(k + src, kv_dim, n, hd, shape_.type,
                  keys_.data() + shape_.bytes_of(static_cast<int64_t>(at)));
    store_kv_rows(v + src, kv_dim, n, hd, shape_.type,
                  values_.data() + shape_.bytes_of(static_cast<int64_t>(at)));
  });
}

void StaticKvCache::stage_chunk(int64_t n_tokens, const float* k, const float* v) {
  const int64_t hd = shape_.head_dim, kv_dim = shape_.kv_dim();
  for (int64_t h = 0; h < shape_.n_head_kv; ++h) {
    const auto at = shape_.bytes_of(h * chunk_capacity_ * hd);
    store_kv_rows(k + h * hd, kv_dim, n_tokens, hd, shape_.type, chunk_keys_.data() + at);
    store_kv_rows(v + h * hd, kv_dim, n_tokens, hd, shape_.type, chunk_values_.data() + at);
  }
}

bool StaticKvCache::rings_hold_chunk(int64_t layer, int64_t pos, int64_t n_tokens) const {
  for (int64_t h = 0; h < shape_.n_head_kv; ++h) {
    // The write of position p evicts p - ring; the chunk's first query needs keys from
    // max(sinks, pos - span + 1) on.
    const int64_t needed_from = std::max(sinks_, pos - span(layer, h) + 1);
    if (pos + n_tokens - ring_size(layer, h) > needed_from) return false;
  }
  return true;
}

std::vector<kernels::KeyRun> StaticKvCache::key_runs(int64_t layer, int seq, int64_t q_pos,
                                                     int64_t stored_end) const {
  check_layer_seq(layer, seq);
  std::vector<kernels::KeyRun> runs;
  const int64_t hd = shape_.head_dim;
  for (int64_t h = 0; h < shape_.n_head_kv; ++h) {
    const size_t base = head_offset(layer, seq, h);
    auto run_at = [&](int64_t slot, int64_t key_pos0, int64_t n_keys) {
      const size_t element = base + static_cast<size_t>(slot * hd);
      runs.push_back({h, element_address(keys_, element), element_address(values_, element),
                      key_pos0, n_keys});
    };
    if (sinks_ > 0 && stored_end > 0) run_at(0, 0, std::min(sinks_, stored_end));
    const int64_t ring = ring_size(layer, h);
    const int64_t band_span = span(layer, h);
    const int64_t lo = std::max(sinks_, band_span >= q_pos + 1 ? 0 : q_pos - band_span + 1);
    if (stored_end <= lo) continue;
    const int64_t first_slot = (lo - sinks_) % ring;
    const int64_t first_len = std::min(stored_end - lo, ring - first_slot);
    run_at(sinks_ + first_slot, lo, first_len);
    if (first_len < stored_end - lo) run_at(sinks_, lo + first_len, stored_end - lo - first_len);
  }
  return runs;
}

void StaticKvCache::attend(int64_t layer, int seq, int64_t pos, int64_t n_tokens,
                           const kernels::AttentionShape& shape, const float* q, const float* k,
                           const float* v, float* out, int n_threads) {
  if (shape.n_head_kv != shape_.n_head_kv || shape.head_dim != shape_.head_dim) {
    fail("static kv cache: attention shape {} KV heads x {} does not match the cache's {} x {}",
         shape.n_head_kv, shape.head_dim, shape_.n_head_kv, shape_.head_dim);
  }
  check_chunk(layer, seq, pos, n_tokens);
  if (n_tokens == 0) return;
  const bool in_place = rings_hold_chunk(layer, pos, n_tokens);
  if (in_place) store(layer, seq, pos, n_tokens, k, v);
  std::vector<kernels::KeyRun> runs = key_runs(layer, seq, pos, in_place ? pos + n_tokens : pos);
  const size_t head_chunk_bytes = shape_.bytes_of(chunk_capacity_ * shape_.head_dim);
  if (!in_place) {
    stage_chunk(n_tokens, k, v);
    for (int64_t h = 0; h < shape_.n_head_kv; ++h) {
      const size_t at = static_cast<size_t>(h) * head_chunk_bytes;
      runs.push_back({h, chunk_keys_.data() + at, chunk_values_.data() + at, pos, n_tokens});
    }
  }
  kernels::AttentionState state;
  state.reset(n_tokens, shape.n_head, shape.head_dim);
  kernels::attention_accumulate(shape, q, n_tokens, pos, shape_.type, runs, masks(layer), state,
                                n_threads);
  kernels::attention_finish(state, out);
  if (in_place) return;
  const size_t row_bytes = shape_.row_bytes();
  write_kept_runs(layer, seq, pos, n_tokens, [&](int64_t h, int64_t t0, int64_t n, size_t at) {
    const size_t from =
        static_cast<size_t>(h) * head_chunk_bytes + static_cast<size_t>(t0) * row_bytes;
    const size_t bytes = static_cast<size_t>(n) * row_bytes;
    std::memcpy(keys_.data() + shape_.bytes_of(static_cast<int64_t>(at)), chunk_keys_.data() + from,
                bytes);
    std::memcpy(values_.data() + shape_.bytes_of(static_cast<int64_t>(at)),
                chunk_values_.data() + from, bytes);
  });
}

void StaticKvCache::set_length(int seq, int64_t length) {
  check_layer_seq(0, seq);
  if (length < 0 || length > shape_.n_ctx) {
    fail("context is full: length {} exceeds the {} the cache was planned for", length,
         shape_.n_ctx);
  }
  lengths_[static_cast<size_t>(seq)] = length;
}

void StaticKvCache::fill(int seq, int64_t length, std::span<const float> k,
                         std::span<const float> v) {
  check_layer_seq(0, seq);
  const int64_t n_rows = fill_rows("static kv cache", shape_, length, k, v);
  const int64_t kv_dim = shape_.kv_dim();
  for (int64_t layer = 0; layer < shape_.n_layer; ++layer) {
    for (int64_t pos = 0; pos < length;) {
      const int64_t row = pos % n_rows;
      const int64_t n = std::min({length - pos, n_rows - row, prefill_chunk_});
      store(layer, seq, pos, n, k.data() + row * kv_dim, v.data() + row * kv_dim);
      pos += n;
    }
  }
  set_length(seq, length);
}

bool StaticKvCache::rewind(int seq, int64_t length) {
  set_length(seq, length);
  return true;
}

}  // namespace moa
