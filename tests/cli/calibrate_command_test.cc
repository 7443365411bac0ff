// `moa calibrate` end to end: the summary table, a run killed with SIGKILL and rerun gives the
// same file as an uninterrupted run, and bad options give one error line naming the flag.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "support/assets.h"

namespace moa {
namespace {

TEST(CalibrateCommand, ResumesAfterKillNineToTheSameFile) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string dir = test::temp_dir();
  const std::string args =
      "calibrate -m '" + model + "' --lengths 600,900 -n 4 --max-answer 8 --seed 4 -t 1 -o ";
  const test::CommandResult whole = test::run_moa(args + "'" + dir + "/whole.json'");
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  EXPECT_NE(whole.out.find("| 600 | 4 |"), std::string::npos) << whole.out;
  EXPECT_NE(whole.out.find("| 900 | 4 |"), std::string::npos) << whole.out;

  // Kill the run as soon as its first sample is on disk, then finish it.
  const std::string killed = dir + "/killed.json";
  test::run_moa_killed_after_first_write(args, killed);
  ASSERT_TRUE(std::filesystem::exists(killed));
  const test::CommandResult resumed = test::run_moa(args + "'" + killed + "'");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(test::read_file(killed), test::read_file(dir + "/whole.json"));
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << entry.path();
  }
}

TEST(CalibrateCommand, BadOptionsGiveOneErrorLine) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const std::string dir = test::temp_dir();
  const std::string base = "calibrate -m '" + model + "' -o '" + dir + "/c.json' ";
  test::expect_one_line_error(test::run_moa(base + "--lengths 4096"),
                              "--lengths: length 4096 exceeds the model's context of 2048 tokens");
  test::expect_one_line_error(test::run_moa(base + "--lengths 0"), "--lengths: 0");
  test::expect_one_line_error(test::run_moa(base + "--lengths 600 --tasks lines,needle"),
                              "task 'needle' is not known");
  test::expect_one_line_error(test::run_moa(base + "--lengths 600 --source /nonexistent.jsonl"),
                              "--source: /nonexistent.jsonl: no such file");
  EXPECT_FALSE(std::filesystem::exists(dir + "/c.json"));
}

}  // namespace
}  // namespace moa
