// A sparse plan's rules at one input length as the attention kernels' masks: the bridge from the
// plan (plain data) to kernels::BandMask, used by the caches that run a plan.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernels.h"
#include "plan/plan.h"

namespace moa {

// Visible-key masks of one layer's KV heads at input length n: {plan sinks, S_h(n)}. Throws when
// the layer does not exist or a rule has no valid span at n.
std::vector<kernels::BandMask> band_masks(const SparsePlan& plan, int64_t layer, int64_t n);

}  // namespace moa
