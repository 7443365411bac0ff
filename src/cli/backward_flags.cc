// The profiler's memory flags, shared by moa profile, moa profile bench and moa compress:
// --memory-budget and --exact-backward (profile/profiler.h), and malloc's settings for its
// process.
#include <malloc.h>

#include "cli/commands.h"
#include "util/error.h"

namespace moa::cli {

void add_backward_memory_options(CLI::App& cmd, int64_t& budget_mib, bool& exact) {
  cmd.add_option("--memory-budget", budget_mib,
                 "MiB for activations kept by the forward and the weights' Q8_0 transposes "
                 "(default: half the available memory; 0: recompute every layer)");
  cmd.add_flag("--exact-backward", exact,
               "Multiply quantized weights' transposes on exact F32 panels (slower; default: "
               "their Q8_0 transposes on the int8 GEMM)");
}

void keep_freed_memory_for_reuse() {
  // Older glibc caps the mmap threshold at 32 MiB: keep what it accepts, and the trim threshold
  // only with it (set alone, it would pin the threshold at its 128 KiB start).
  for (int threshold : {1 << 30, 32 << 20}) {
    if (mallopt(M_MMAP_THRESHOLD, threshold) == 1) {
      mallopt(M_TRIM_THRESHOLD, threshold);
      return;
    }
  }
}

int64_t memory_budget_bytes(int64_t budget_mib) {
  constexpr int64_t kMaxMib = int64_t{1} << 30;  // 1 PiB
  if (budget_mib == -1) return -1;
  if (budget_mib < 0 || budget_mib > kMaxMib) {
    fail("--memory-budget: {} MiB (expected 0 .. {})", budget_mib, kMaxMib);
  }
  return budget_mib * 1024 * 1024;
}

}  // namespace moa::cli
