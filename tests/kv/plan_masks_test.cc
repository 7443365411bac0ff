// A plan's rules as the attention kernels' masks: the plan's sinks and each head's span S_h(n).
#include "kv/plan_masks.h"

#include <gtest/gtest.h>

#include "util/error.h"

namespace moa {
namespace {

TEST(PlanMasks, CarrySinksAndSpans) {
  SparsePlan plan = uniform_plan({"llama", 2, 4, 2, ""}, 256, 16);
  plan.rules[0][1] = {128, 0.5};
  auto masks = band_masks(plan, 0, 1000);
  ASSERT_EQ(masks.size(), 2u);
  EXPECT_EQ(masks[0].sinks, 16);
  EXPECT_EQ(masks[0].span, 256);
  EXPECT_EQ(masks[1].span, 628);
  EXPECT_EQ(band_masks(plan, 1, 100)[0].span, 100);  // clamped at n
}

TEST(PlanMasks, RejectMissingLayersAndInvalidSpans) {
  SparsePlan plan = uniform_plan({"llama", 2, 4, 2, ""}, 256, 16);
  EXPECT_THROW(band_masks(plan, 2, 1000), Error);
  EXPECT_THROW(band_masks(plan, -1, 1000), Error);
  plan.rules[1][0] = {-500, 0.0};
  EXPECT_THROW(band_masks(plan, 1, 100), Error);
}

}  // namespace
}  // namespace moa
