// What profiling one sample costs (issue 13's benchmark): the seconds of backward_sample over n
// positions against the engine's dense prefill of the same n tokens, in one process and one run
// (so the ratio is fair on a shared machine), and the peak resident memory of the profiling pass
// alone (the kernel's high-water mark reset before it), which must grow linearly with n.
#pragma once

#include <cstdint>

#include "engine/forward.h"

namespace moa {

struct ProfileBenchSettings {
  int repeats = 1;
  int n_threads = 1;
  bool exact_backward = false;  // ProfileOptions::exact_backward
  int64_t memory_budget = -1;   // ProfileOptions::memory_budget
};

struct ProfileCost {
  int64_t n_tokens = 0;
  double setup_seconds = 0.0;    // the weights' transposes, built once per run when kept
  int64_t transposes_bytes = 0;  // held for the whole run (0: none, or rebuilt per layer)
  int64_t kept_attention = 0;    // layers whose attention block the forward kept
  int64_t kept_ffn = 0;          // layers whose FFN gate and up it kept
  double forward_seconds = 0.0;  // dense prefill (F32 KV cache), best of the repeats
  double profile_seconds = 0.0;  // backward_sample over the same positions, best of the repeats
  int64_t rss_before = 0;        // resident bytes before the profiling pass (model, runtime)
  int64_t peak_rss = -1;         // high-water mark during it; -1 where Linux cannot reset it

  double ratio() const { return profile_seconds / forward_seconds; }
};

// Runs both passes `repeats` times over n tokens (n - 7 prompt tokens, 8 answer tokens of
// which the last is only a target), with the memory plan `moa profile` would make for samples
// of n positions. Throws when n is below 16 or beyond the model's context.
ProfileCost measure_profile_cost(const Model& model, int64_t n, const ProfileBenchSettings& s);

}  // namespace moa
