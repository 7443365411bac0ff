// `moa profile` as a library: runs every calibration sample's backward (sample_backward.h) and
// sums its per-layer influence histograms into the profile at the sample's length. The profile
// file is rewritten atomically after every sample and records the sample indices per length, so
// rerunning after an interruption continues after the last finished sample. Under mpirun the
// processes share the samples through a SampleExchange (profile/mpi_exchange.h): rank 0 alone
// reads and writes the file and sums the other ranks' histograms in sample order, so the file
// is the single-process one bit for bit (for the same thread count per process).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "calibrate/calibration_set.h"
#include "engine/forward.h"
#include "profile/influence_profile.h"
#include "profile/sample_backward.h"

namespace moa {

struct ProfileOptions {
  int64_t sinks = 64;  // G: keys j < G are the plan's global sinks
  int n_threads = 1;
  bool exact_backward = false;  // W^T dy on F32 panels even for quantized weights
  // Bytes for kept activations and the weights' Q8_0 transposes (backward_weights.h); -1: half
  // the memory available at the start, shared by the ranks on this host.
  int64_t memory_budget = -1;
};

// Half of the memory available to this process (MemAvailable, or the cgroup's room when it is
// less), divided by the MPI ranks on this host.
int64_t default_memory_budget();

// How a sample of up to `max_positions` positions spends `budget` bytes (-1: the default):
// activations first (they save recomputing whole layers), then the transposes, kept for every
// sample when they fit beside the activations and rebuilt per layer otherwise.
struct BackwardMemory {
  bool keep_transposes = false;
  int64_t keep_bytes = 0;  // BackwardOptions::keep_bytes
};
BackwardMemory plan_backward_memory(const Model& model, int64_t transposes_bytes,
                                    int64_t max_positions, int64_t budget);

// The backward for samples of up to `max_positions` positions under `options`' memory plan:
// its transposes (every one built now when they are kept and max_positions > 0) and its
// per-sample options.
struct BackwardSetup {
  BackwardWeights transposes;
  BackwardOptions options;
};
BackwardSetup prepare_backward(const Model& model, const ProfileOptions& options,
                               int64_t max_positions);

// Processes that share one profiling run; rank 0 owns the profile file. Kept abstract so that
// only profile/mpi_exchange.cc knows MPI.
class SampleExchange {
 public:
  virtual ~SampleExchange() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Every rank's `values` become rank 0's (sized by rank 0).
  virtual void broadcast(std::vector<int64_t>& values) = 0;
  virtual void send_to_root(std::span<const double> values) = 0;  // on a rank > 0
  virtual void receive(int from, std::span<double> values) = 0;   // on rank 0, sized by it
};

// Checks the calibration set against the model (identity, lengths within the context) and the
// sinks against every length, before any work starts.
void check_profile_inputs(const CalibrationSet& set, const std::string& calibration_path,
                          const Model& model, const ProfileOptions& options);

// Profiles (or resumes) into `output_path`, rewriting it after each sample; `show_progress` draws
// a progress line. Samples with an empty answer are skipped with a warning; a set with none left
// is an error. Results are the same for a given thread count, resumed or not, and split over
// `exchange`'s ranks or not (null: this process alone). Every rank returns; only rank 0's
// profile holds the sums.
InfluenceProfile profile_calibration(const Model& model, const CalibrationSet& set,
                                     const std::string& calibration_path,
                                     const ProfileOptions& options, const std::string& output_path,
                                     bool show_progress, SampleExchange* exchange = nullptr);

}  // namespace moa
