// Quiet and loaded runs of the same throughput rows; see busy_neighbour.h.
#include "eval/busy_neighbour.h"

#include "util/error.h"
#include "util/spinning_process.h"

namespace moa {

double BusyNeighbourRow::slowdown() const {
  return quiet.median_seconds > 0.0 ? loaded.median_seconds / quiet.median_seconds : 0.0;
}

std::vector<BusyNeighbourRow> measure_busy_neighbour(
    const Model& model, ThroughputConfig config,
    const std::function<void(const std::string&)>& progress) {
  // The probes would measure the spinner too; only the ratio of the two runs is reported.
  config.probe_machine = false;
  progress("busy neighbour: quiet run");
  std::vector<ThroughputResult> quiet = measure_throughput(model, config, progress);
  std::vector<ThroughputResult> loaded;
  {
    SpinningProcess spinner;
    progress(fmt::format("busy neighbour: loaded run (spinning process {})", spinner.pid()));
    loaded = measure_throughput(model, config, progress);
  }
  if (loaded.size() != quiet.size()) {
    fail("busy neighbour: {} quiet rows but {} loaded rows", quiet.size(), loaded.size());
  }
  std::vector<BusyNeighbourRow> rows;
  for (size_t i = 0; i < quiet.size(); ++i) rows.push_back({quiet[i], loaded[i]});
  return rows;
}

}  // namespace moa
