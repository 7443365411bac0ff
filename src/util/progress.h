// A progress line for long jobs (calibrate, profile, eval): items done of the total, tokens/s
// and the time left, redrawn in place on a terminal and silent when stderr is not one (logs and
// CI output stay clean). Work resumed from an earlier run counts as done but not in the rates.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace moa {

class Progress {
 public:
  // `done` items were finished by an earlier run; `enabled` defaults to stderr being a terminal.
  Progress(std::string what, int64_t total, int64_t done = 0);
  Progress(std::string what, int64_t total, int64_t done, bool enabled);
  ~Progress();  // ends the line

  // One more item finished, which processed `tokens` tokens.
  void step(int64_t tokens);
  // "12/40 samples, 830 tok/s, ETA 1m05s" (what the line shows, for tests and logs).
  std::string status() const;

 private:
  using Clock = std::chrono::steady_clock;
  std::string what_;
  int64_t total_, done_, resumed_;
  int64_t tokens_ = 0;
  bool enabled_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_draw_{};
};

// "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);

}  // namespace moa
