// Progress line (see progress.h). Redraws at most every 200 ms so a fast loop does not flood
// the terminal; ETA assumes the remaining items cost what this run's items cost on average.
#include "util/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace moa {

Progress::Progress(std::string what, int64_t total, int64_t done)
    : Progress(std::move(what), total, done, isatty(STDERR_FILENO) != 0) {}

Progress::Progress(std::string what, int64_t total, int64_t done, bool enabled)
    : what_(std::move(what)), total_(total), done_(done), resumed_(done), enabled_(enabled) {}

Progress::~Progress() {
  if (enabled_) std::fprintf(stderr, "\r%s\n", status().c_str());
}

void Progress::step(int64_t tokens) {
  ++done_;
  tokens_ += tokens;
  const auto now = Clock::now();
  if (!enabled_ || (now - last_draw_ < std::chrono::milliseconds(200) && done_ < total_)) return;
  last_draw_ = now;
  std::fprintf(stderr, "\r%s\x1b[K", status().c_str());
  std::fflush(stderr);
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

std::string Progress::status() const {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  std::string line = fmt::format("{}: {}/{}", what_, done_, total_);
  const int64_t done_here = done_ - resumed_;
  if (done_here > 0 && elapsed > 0.0) {
    // Items without tokens (optimizer solves) show no rate rather than "0 tok/s".
    if (tokens_ > 0) line += fmt::format(", {:.0f} tok/s", static_cast<double>(tokens_) / elapsed);
    const double per_item = elapsed / static_cast<double>(done_here);
    if (done_ < total_) {
      line += ", ETA " + format_duration(per_item * static_cast<double>(total_ - done_));
    }
  }
  return line;
}

}  // namespace moa
