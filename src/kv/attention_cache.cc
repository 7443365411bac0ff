// Shared checks of the AttentionCache implementations.
#include "kv/attention_cache.h"

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

void AttentionCache::fill(int, int64_t, std::span<const float>, std::span<const float>) {
  fail("this attention cache stores no keys and cannot be filled");
}

bool AttentionCache::rewind(int, int64_t) { return false; }

int64_t fill_rows(const char* what, const KvShape& shape, int64_t length, std::span<const float> k,
                  std::span<const float> v) {
  const auto kv_dim = static_cast<size_t>(shape.kv_dim());
  if (k.empty() || k.size() != v.size() || k.size() % kv_dim != 0) {
    fail("{}: fill takes keys and values of equally many rows of {} floats (got {} and {} floats)",
         what, kv_dim, k.size(), v.size());
  }
  if (length < 0 || length > shape.n_ctx) {
    fail("{}: cannot fill {} positions: expected 0 .. the context of {}", what, length,
         shape.n_ctx);
  }
  return static_cast<int64_t>(k.size() / kv_dim);
}

}  // namespace moa
