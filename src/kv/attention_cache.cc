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

}  // namespace moa
