// `moa profile` under `mpirun -np 2` on loopback: the two ranks split the samples and rank 0
// writes the same file, bit for bit, as one process with the same thread count, including when
// it resumes a file that a killed single-process run left. Skipped, loudly, where mpirun is
// missing or moa was built without MPI (MOA_MPI=OFF).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "support/assets.h"

namespace moa {
namespace {

// Shared memory between the ranks only (a container may have no network), no CMA (needs
// ptrace rights a container may lack), root allowed (CI runs as root), no core binding.
constexpr const char* kMpirun =
    "ASAN_OPTIONS=detect_leaks=0 OMPI_MCA_btl=self,vader "
    "OMPI_MCA_btl_vader_single_copy_mechanism=none mpirun --allow-run-as-root --oversubscribe "
    "--bind-to none -np 2";

bool mpirun_available() { return std::system("command -v mpirun >/dev/null 2>&1") == 0; }

TEST(ProfileMpi, TwoRanksWriteTheSingleProcessProfileAndResume) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  if (!mpirun_available()) {
    GTEST_SKIP() << "\n*** mpirun NOT FOUND: the MPI scale-out of moa profile is untested "
                    "(apt-get install openmpi-bin libopenmpi-dev)";
  }
  const std::string dir = test::temp_dir();
  const std::string calib = dir + "/calib.json";
  const test::CommandResult made = test::run_moa(
      "calibrate -m '" + model + "' --lengths 600,700 -n 2 --max-answer 6 -t 1 -o '" + calib + "'");
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::string args = "profile -m '" + model + "' --calib '" + calib + "' --sinks 4 -t 1 -o ";
  const test::CommandResult single = test::run_moa(args + "'" + dir + "/single.profile'");
  ASSERT_EQ(single.exit_code, 0) << single.err;

  const test::CommandResult two = test::run_moa(args + "'" + dir + "/mpi.profile'", "", kMpirun);
  if (two.err.find("built without MPI") != std::string::npos) {
    GTEST_SKIP() << "\n*** moa WAS BUILT WITHOUT MPI (MOA_MPI=OFF): scale-out untested";
  }
  ASSERT_EQ(two.exit_code, 0) << two.err;
  EXPECT_NE(two.err.find("wrote"), std::string::npos) << two.err;
  EXPECT_EQ(test::read_file(dir + "/mpi.profile"), test::read_file(dir + "/single.profile"));

  // A single-process run killed after its first sample, resumed by two ranks.
  const std::string killed = dir + "/killed.profile";
  test::run_moa_killed_after_first_write(args, killed);
  ASSERT_TRUE(std::filesystem::exists(killed));
  const test::CommandResult resumed = test::run_moa(args + "'" + killed + "'", "", kMpirun);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(test::read_file(killed), test::read_file(dir + "/single.profile"));

  // A file rank 0 cannot resume (other sinks) stops every rank instead of leaving one waiting.
  const std::string other_sinks = "profile -m '" + model + "' --calib '" + calib +
                                  "' --sinks 8 -t 1 -o '" + dir + "/single.profile'";
  const test::CommandResult bad = test::run_moa(other_sinks, "", kMpirun);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("error: "), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("sinks"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace moa
