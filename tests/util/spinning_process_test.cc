// The busy-neighbour spinner runs until stopped, and stopping (or destroying) it leaves no
// process behind.
#include "util/spinning_process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <thread>

namespace moa {
namespace {

bool process_exists(pid_t pid) { return kill(pid, 0) == 0 || errno != ESRCH; }

TEST(SpinningProcess, RunsUntilStoppedAndIsReaped) {
  pid_t pid = -1;
  {
    SpinningProcess spinner;
    pid = spinner.pid();
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_TRUE(process_exists(pid));
  }
  EXPECT_FALSE(process_exists(pid));  // killed and reaped, not a zombie
}

TEST(SpinningProcess, StopIsIdempotent) {
  SpinningProcess spinner;
  const pid_t pid = spinner.pid();
  spinner.stop();
  spinner.stop();
  EXPECT_FALSE(process_exists(pid));
}

}  // namespace
}  // namespace moa
