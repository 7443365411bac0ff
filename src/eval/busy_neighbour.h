// How much a throughput run slows down when another program keeps one core busy (`moa bench
// --busy-neighbour`): every row is timed on the machine as it is, then again with a spinning
// child process (util/spinning_process.h) running beside it, and reported as the ratio of the
// two times. A kernel whose thread team waits at a barrier for a thread the OS has descheduled
// shows up here as a ratio far above what losing one core's share explains.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "eval/throughput.h"

namespace moa {

struct BusyNeighbourRow {
  ThroughputResult quiet;   // timed without the spinner
  ThroughputResult loaded;  // the same row with the spinner running
  // loaded seconds / quiet seconds (medians): 1 = unaffected, 2 = half the speed.
  double slowdown() const;
};

// Runs measure_throughput twice (machine probes off), the second time with one spinning
// process; the spinner is killed before this returns or throws.
std::vector<BusyNeighbourRow> measure_busy_neighbour(
    const Model& model, ThroughputConfig config,
    const std::function<void(const std::string&)>& progress);

}  // namespace moa
