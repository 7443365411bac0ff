// The progress line's text: items done of the total, a token rate only when items carry tokens.
#include "util/progress.h"

#include <gtest/gtest.h>

namespace moa {
namespace {

TEST(Progress, ShowsATokenRateOnlyForItemsWithTokens) {
  Progress solves("MILP solves", 3, 0, false);
  solves.step(0);
  EXPECT_EQ(solves.status().rfind("MILP solves: 1/3", 0), 0u);
  EXPECT_EQ(solves.status().find("tok/s"), std::string::npos) << solves.status();
  Progress samples("samples", 2, 0, false);
  samples.step(100);
  EXPECT_NE(samples.status().find("tok/s"), std::string::npos) << samples.status();
  EXPECT_EQ(format_duration(65), "1m05s");
}

}  // namespace
}  // namespace moa
