// Shape checks and the K/V row store shared by every cache (see kv_shape.h).
#include "kv/kv_shape.h"

#include <algorithm>

#include "gguf/quant.h"
#include "util/error.h"

namespace moa {

void check_kv_shape(const char* what, const KvShape& s) {
  if (s.n_ctx <= 0) fail("{}: context size must be positive (got {})", what, s.n_ctx);
  if (s.n_seq <= 0) fail("{}: number of sequences must be positive (got {})", what, s.n_seq);
  if (s.n_layer <= 0 || s.n_head_kv <= 0 || s.head_dim <= 0) {
    fail("{}: invalid shape (layers {}, kv heads {}, head dim {}): expected positive values", what,
         s.n_layer, s.n_head_kv, s.head_dim);
  }
  kernels::check_kv_head_dim(s.type, s.head_dim, what);
}

void store_kv_rows(const float* src, int64_t src_stride, int64_t n_rows, int64_t head_dim,
                   kernels::KvType type, void* dst) {
  if (type == kernels::KvType::kF32) {
    auto* out = static_cast<float*>(dst);
    for (int64_t r = 0; r < n_rows; ++r)
      std::copy_n(src + r * src_stride, head_dim, out + r * head_dim);
    return;
  }
  if (type == kernels::KvType::kQ8_0) {
    const size_t row_bytes = kernels::kv_bytes(type, head_dim, head_dim);
    for (int64_t r = 0; r < n_rows; ++r) {
      kernels::quantize_kv_row_q8_0(src + r * src_stride, head_dim,
                                    static_cast<uint8_t*>(dst) + r * row_bytes);
    }
    return;
  }
  auto* half = static_cast<uint16_t*>(dst);
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* row = src + r * src_stride;
    uint16_t* out = half + r * head_dim;
    for (int64_t i = 0; i < head_dim; ++i) out[i] = gguf::fp32_to_fp16(row[i]);
  }
}

}  // namespace moa
