// SpinningProcess: fork, spin, SIGKILL + waitpid; see spinning_process.h.
#include "util/spinning_process.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "util/error.h"

namespace moa {

SpinningProcess::SpinningProcess() {
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ < 0) fail("busy neighbour: fork failed: {}", std::strerror(errno));
  if (pid_ == 0) {
    // Only async-signal-safe calls here: the parent may have had other threads at the fork.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);  // the parent died before the line above took effect
    volatile uint64_t counter = 0;
    for (;;) counter = counter + 1;
  }
}

SpinningProcess::~SpinningProcess() { stop(); }

void SpinningProcess::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

}  // namespace moa
