// Shared checks of the AttentionCache implementations.
#include "kv/attention_cache.h"

#include <algorithm>

#include "gguf/quant.h"
#include "util/error.h"

namespace moa {

void check_context_room(int seq, int64_t used, int64_t n_new, int64_t n_ctx, const char* hint) {
  if (n_new < 0 || used + n_new > n_ctx) {
    fail(
        "context is full: sequence {} holds {} tokens, {} more do not fit in the context of {} "
        "({})",
        seq, used, n_new, n_ctx, hint);
  }
}

void check_cache_dimensions(const char* what, int64_t n_layer, int64_t n_head_kv, int64_t head_dim,
                            int64_t n_ctx, int n_seq) {
  if (n_ctx <= 0) fail("{}: context size must be positive (got {})", what, n_ctx);
  if (n_seq <= 0) fail("{}: number of sequences must be positive (got {})", what, n_seq);
  if (n_layer <= 0 || n_head_kv <= 0 || head_dim <= 0) {
    fail("{}: invalid shape (layers {}, kv heads {}, head dim {})", what, n_layer, n_head_kv,
         head_dim);
  }
}

void store_kv_row(const float* src, int64_t n, kernels::KvType type, void* dst) {
  if (type == kernels::KvType::kF32) {
    std::copy_n(src, n, static_cast<float*>(dst));
    return;
  }
  auto* half = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) half[i] = gguf::fp32_to_fp16(src[i]);
}

}  // namespace moa
