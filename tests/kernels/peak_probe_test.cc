// The int8 peak probe: each supported instruction set's loop really does its dot products (the
// checksum a * b * macs * iterations), and the measured peak is positive.
#include "kernels/peak_probe.h"

#include <gtest/gtest.h>

namespace moa::kernels {
namespace {

TEST(Int8PeakProbe, EverySupportedLoopComputesItsDotProducts) {
  int checked = 0;
  for (Int8DotIsa isa :
       {Int8DotIsa::kAvx512Vnni, Int8DotIsa::kAvxVnni, Int8DotIsa::kAvx2, Int8DotIsa::kScalar}) {
    if (!int8_dot_isa_supported(isa)) continue;
    ++checked;
    for (int64_t iterations : {1, 37}) {
      const int64_t want = 3 * -5 * int8_dot_probe_macs_per_iteration(isa) * iterations;
      EXPECT_EQ(int8_dot_probe_loop(isa, iterations, 3, -5), want) << int8_dot_isa_name(isa);
    }
  }
  EXPECT_GE(checked, 1);  // plain C always runs
  EXPECT_TRUE(int8_dot_isa_supported(best_int8_dot_isa()));
}

TEST(Int8PeakProbe, MeasuresAPositiveRateOnTheBestIsa) {
  const Int8Peak peak = measure_int8_peak(2);
  EXPECT_GT(peak.gops, 0.0);
  EXPECT_EQ(peak.isa, best_int8_dot_isa());
}

}  // namespace
}  // namespace moa::kernels
