// Influence profile files: round trip, suffix-sum pricing of spans per sample, and one-line
// errors for truncated payloads, bad headers, unprofiled lengths and other models.
#include "profile/influence_profile.h"

#include <gtest/gtest.h>

#include "support/assets.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace moa {
namespace {

using test::error_of;

InfluenceProfile sample_profile() {
  InfluenceProfile p = empty_profile({"llama", 2, 4, 2, "h"}, 100, 4, "calib.json", {16, 8});
  for (ProfiledLength& l : p.lengths) {
    l.samples = {0, 1};
    for (int64_t layer = 0; layer < 2; ++layer) {
      kernels::InfluenceHistogram& h = l.layers[static_cast<size_t>(layer)];
      for (int64_t kv = 0; kv < 2; ++kv) {
        for (int64_t d = 0; d < l.length; ++d) {
          h.at(kv, d) = 1.0 + d + 10.0 * kv + 100.0 * layer;
          h.signed_by_distance[static_cast<size_t>(kv * l.length + d)] = d % 2 == 0 ? -1.0 : 0.5;
        }
        h.sink[static_cast<size_t>(kv)] = 7.0 + kv;
        h.signed_sink[static_cast<size_t>(kv)] = -3.0;
      }
    }
  }
  return p;
}

TEST(InfluenceProfile, RoundTripsAndPricesSpansBySuffixSums) {
  const std::string path = test::temp_dir() + "/p.profile";
  write_profile(sample_profile(), path);
  const InfluenceProfile p = read_profile(path);
  ASSERT_EQ(p.lengths.size(), 2u);
  EXPECT_EQ(p.lengths[0].length, 8);  // sorted
  EXPECT_EQ(p.lengths[1].sample_count(), 2);
  EXPECT_EQ(p.sinks, 4);
  EXPECT_EQ(p.calibration, "calib.json");
  // layer 1, kv 1 at N = 8: d = 5, 6, 7 -> (1+d+10+100) summed = 116+117+118, over 2 samples.
  EXPECT_DOUBLE_EQ(p.masked_influence(8, 1, 1, 5), (116.0 + 117.0 + 118.0) / 2.0);
  EXPECT_DOUBLE_EQ(p.masked_influence(8, 0, 0, 8), 0.0);
  EXPECT_DOUBLE_EQ(p.masked_influence(8, 0, 0, 100), 0.0);
  EXPECT_DOUBLE_EQ(p.total_influence(16, 0, 0), (16.0 * 17.0 / 2.0) / 2.0);
  EXPECT_DOUBLE_EQ(p.sink_influence(16, 0, 1), 8.0 / 2.0);
  // Signed: d = 5, 6, 7 -> 0.5 - 1 + 0.5, over 2 samples.
  EXPECT_DOUBLE_EQ(p.masked_loss_change(8, 1, 1, 5), 0.0);
  EXPECT_DOUBLE_EQ(p.masked_loss_change(8, 1, 1, 4), -0.5);
  EXPECT_EQ(p.lengths[0].layers[1].signed_sink[1], -3.0);
  EXPECT_NE(error_of([&] {
              p.masked_influence(12, 0, 0, 1);
            }).find("length 12 was not profiled (profiled: 8, 16)"),
            std::string::npos);
}

TEST(InfluenceProfile, RejectsTruncatedCorruptAndMismatchedFiles) {
  const std::string dir = test::temp_dir();
  write_profile(sample_profile(), dir + "/p.profile");
  const std::string bytes = read_regular_file(dir + "/p.profile");
  write_file_atomically(dir + "/short.profile", bytes.substr(0, bytes.size() - 8));
  EXPECT_NE(error_of([&] { read_profile(dir + "/short.profile"); }).find("truncated or corrupt"),
            std::string::npos);
  std::string header_bad = bytes;
  header_bad.replace(header_bad.find("\"sinks\":4"), 9, "\"sinks\":-4");
  write_file_atomically(dir + "/sinks.profile", header_bad);
  EXPECT_NE(error_of([&] { read_profile(dir + "/sinks.profile"); }).find("sinks.profile: sinks"),
            std::string::npos);
  std::string nan = bytes;
  const double bad = -1.0;
  std::memcpy(nan.data() + nan.find('\n') + 1, &bad, sizeof bad);
  write_file_atomically(dir + "/neg.profile", nan);
  EXPECT_NE(error_of([&] { read_profile(dir + "/neg.profile"); }).find("not a finite"),
            std::string::npos);
  write_file_atomically(dir + "/text.profile", "hello");
  EXPECT_NE(error_of([&] { read_profile(dir + "/text.profile"); }).find("no header line"),
            std::string::npos);
  std::string old = bytes;  // version 1 had no signed histograms
  old.replace(old.find("\"version\":2"), 11, "\"version\":1");
  write_file_atomically(dir + "/v1.profile", old);
  EXPECT_NE(
      error_of([&] { read_profile(dir + "/v1.profile"); }).find("version: 1 is not supported"),
      std::string::npos);
  std::string backward = bytes;  // how W^T dy was multiplied: exact or q8_0-transposes only
  backward.replace(backward.find("\"backward\":\"exact\""), 18, "\"backward\":\"fp8\"");
  write_file_atomically(dir + "/backward.profile", backward);
  EXPECT_NE(error_of([&] { read_profile(dir + "/backward.profile"); }).find("backward: \"fp8\""),
            std::string::npos);
  std::string before = bytes;  // files from before the field: exact
  before.replace(before.find("\"backward\":\"exact\","), 19, "");
  write_file_atomically(dir + "/before.profile", before);
  EXPECT_EQ(read_profile(dir + "/before.profile").backward, "exact");
  const InfluenceProfile p = read_profile(dir + "/p.profile");
  EXPECT_NE(error_of([&] {
              check_profile_matches(p, {"llama", 3, 4, 2, "h"}, "p");
            }).find("p: profile has 2 layers, the model has 3"),
            std::string::npos);
  EXPECT_NO_THROW(check_profile_matches(p, {"llama", 2, 4, 2, "h"}, "p"));
}

}  // namespace
}  // namespace moa
