// Plan rules -> band masks (see plan_masks.h).
#include "kv/plan_masks.h"

#include "util/error.h"

namespace moa {

std::vector<kernels::BandMask> band_masks(const SparsePlan& plan, int64_t layer, int64_t n) {
  if (layer < 0 || layer >= static_cast<int64_t>(plan.rules.size())) {
    fail("plan: layer {} does not exist (the plan has {})", layer, plan.rules.size());
  }
  std::vector<kernels::BandMask> masks;
  masks.reserve(plan.rules[static_cast<size_t>(layer)].size());
  for (const ElasticRule& r : plan.rules[static_cast<size_t>(layer)])
    masks.push_back({plan.sinks, r.span(n)});
  return masks;
}

}  // namespace moa
