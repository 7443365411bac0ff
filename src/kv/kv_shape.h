// The one shape every KV cache is built from (dense KvCache, StaticKvCache, H2oKvCache), and the
// one way they write key/value rows. kv/ knows nothing of models: the engine fills a KvShape from
// its ModelConfig (engine/model_config.h: kv_shape), so the caches depend only on kernels and util.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace moa {

struct KvShape {
  int64_t n_layer = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t n_ctx = 0;  // positions a sequence may reach (prompt + new tokens)
  int n_seq = 1;      // sequences, each with its own storage
  kernels::KvType type = kernels::KvType::kF32;

  int64_t kv_dim() const { return n_head_kv * head_dim; }  // floats of one token's K (or V) row
  // Bytes of one stored head_dim row (Q8_0: its scales and int8 values).
  size_t row_bytes() const { return kernels::kv_bytes(type, head_dim, head_dim); }
  // Bytes of n stored elements, n a multiple of head_dim: every cache address goes through it.
  size_t bytes_of(int64_t n) const { return kernels::kv_bytes(type, n, head_dim); }
};

// Throws "<what>: ..." naming the values unless every dimension (layers, KV heads, head size,
// context, sequences) is positive.
void check_kv_shape(const char* what, const KvShape& shape);

// Writes n_rows rows of head_dim floats, `src_stride` floats apart (one head of a
// [token][n_head_kv * head_dim] projection: src_stride = kv_dim), to consecutive rows at `dst`
// as the cache stores them: F32 copied, F16 rounded, Q8_0 quantized per row (rows are
// row_bytes() apart). The one store loop of every cache.
void store_kv_rows(const float* src, int64_t src_stride, int64_t n_rows, int64_t head_dim,
                   kernels::KvType type, void* dst);

}  // namespace moa
