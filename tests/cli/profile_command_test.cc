// `moa profile` end to end: a run killed with SIGKILL and rerun gives the same profile file as an
// uninterrupted run, `moa profile show` prints every head's spans, and bad input (another model's
// calibration set, a corrupt set or profile, sinks not below a length, a negative memory budget)
// gives one error line. The memory budget changes what is recomputed, never the file.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "support/assets.h"

namespace moa {
namespace {

// A small calibration set made by `moa calibrate` for `model`.
std::string make_calibration(const std::string& model, const std::string& dir) {
  const std::string path = dir + "/calib.json";
  const test::CommandResult r = test::run_moa(
      "calibrate -m '" + model + "' --lengths 600,700 -n 3 --max-answer 6 -t 1 -o '" + path + "'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return path;
}

TEST(ProfileCommand, ResumesAfterKillNineToTheSameFile) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string dir = test::temp_dir();
  const std::string calib = make_calibration(model, dir);
  const std::string args = "profile -m '" + model + "' --calib '" + calib + "' --sinks 4 -t 1 -o ";
  const test::CommandResult whole = test::run_moa(args + "'" + dir + "/whole.profile'");
  ASSERT_EQ(whole.exit_code, 0) << whole.err;

  const std::string killed = dir + "/killed.profile";
  test::run_moa_killed_after_first_write(args, killed);
  ASSERT_TRUE(std::filesystem::exists(killed));
  const test::CommandResult resumed = test::run_moa(args + "'" + killed + "'");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(test::read_file(killed), test::read_file(dir + "/whole.profile"));

  // Recomputing every layer (no memory for kept activations) gives the same file too.
  const std::string recomputed = dir + "/recomputed.profile";
  ASSERT_EQ(test::run_moa(args + "'" + recomputed + "' --memory-budget 0").exit_code, 0);
  EXPECT_EQ(test::read_file(recomputed), test::read_file(dir + "/whole.profile"));

  const test::CommandResult show = test::run_moa("profile show '" + killed + "'");
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("length 600 (3 samples)"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("| 4 | 3 |"), std::string::npos) << show.out;  // last layer, KV head
}

TEST(ProfileCommand, BadInputGivesOneErrorLine) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  MOA_REQUIRE_ASSET(other, "models/planted-retrieval.gguf");
  const std::string dir = test::temp_dir();
  const std::string calib = make_calibration(model, dir);
  const std::string out = " -o '" + dir + "/p.profile'";
  test::expect_one_line_error(
      test::run_moa("profile -m '" + other + "' --calib '" + calib + "'" + out), "calib.json");
  test::expect_one_line_error(
      test::run_moa("profile -m '" + model + "' --calib '" + calib + "' --sinks 600" + out),
      "--calib/--sinks: sinks: 600 is not below the profiled length 600");
  test::expect_one_line_error(
      test::run_moa("profile -m '" + model + "' --calib '" + calib + "' --memory-budget -5" + out),
      "--memory-budget: -5 MiB (expected 0 ..");
  test::expect_one_line_error(test::run_moa("profile bench -m '" + model + "' --memory-budget -2"),
                              "--memory-budget");
  std::ofstream(dir + "/bad.json") << "{\"format\": \"moa-calibration\", \"version\": 1";
  test::expect_one_line_error(
      test::run_moa("profile -m '" + model + "' --calib '" + dir + "/bad.json'" + out), "bad.json");
  EXPECT_FALSE(std::filesystem::exists(dir + "/p.profile"));

  ASSERT_EQ(
      test::run_moa("profile -m '" + model + "' --calib '" + calib + "' -t 1" + out).exit_code, 0);
  std::filesystem::resize_file(dir + "/p.profile", 100);
  test::expect_one_line_error(test::run_moa("profile show '" + dir + "/p.profile'"), "p.profile");
  test::expect_one_line_error(
      test::run_moa("profile -m '" + model + "' --calib '" + calib + "'" + out), "p.profile");
}

// `moa profile bench` prints a row per length (timings are not compared: ratios are for
// benchmarks) and refuses a length the model cannot profile.
TEST(ProfileCommand, BenchPrintsARowPerLengthAndRefusesShortLengths) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const test::CommandResult r =
      test::run_moa("profile bench -m '" + model + "' --lengths 32,64 -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("|     32 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("|     64 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("x |"), std::string::npos) << r.out;  // the ratio column
  test::expect_one_line_error(test::run_moa("profile bench -m '" + model + "' --lengths 8"),
                              "--lengths: 8 is outside 16 ..");
}

}  // namespace
}  // namespace moa
