// A child process that keeps one core busy with a tight loop, for measuring how a benchmark
// degrades when another program shares the machine (`moa bench --busy-neighbour`). The child is
// killed when the object goes away, and dies with its parent if the parent is killed first.
#pragma once

#include <sys/types.h>

namespace moa {

class SpinningProcess {
 public:
  // Forks the spinner; throws moa::Error if the fork fails.
  SpinningProcess();
  ~SpinningProcess();
  SpinningProcess(const SpinningProcess&) = delete;
  SpinningProcess& operator=(const SpinningProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Kills and reaps the child now (idempotent).
  void stop();

 private:
  pid_t pid_ = -1;
};

}  // namespace moa
