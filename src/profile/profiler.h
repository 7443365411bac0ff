// `moa profile` as a library: runs every calibration sample's backward (sample_backward.h) and
// sums its per-layer influence histograms into the profile at the sample's length. The profile
// file is rewritten atomically after every sample and records the sample indices per length, so
// rerunning after an interruption continues after the last finished sample.
#pragma once

#include <cstdint>
#include <string>

#include "calibrate/calibration_set.h"
#include "engine/forward.h"
#include "profile/influence_profile.h"

namespace moa {

struct ProfileOptions {
  int64_t sinks = 64;  // G: keys j < G are the plan's global sinks
  int n_threads = 1;
};

// Checks the calibration set against the model (identity, lengths within the context) and the
// sinks against every length, before any work starts.
void check_profile_inputs(const CalibrationSet& set, const std::string& calibration_path,
                          const Model& model, const ProfileOptions& options);

// Profiles (or resumes) into `output_path`, rewriting it after each sample; `show_progress` draws
// a progress line. Samples with an empty answer are skipped with a warning; a set with none left
// is an error. Results are the same for a given thread count, resumed or not.
InfluenceProfile profile_calibration(const Model& model, const CalibrationSet& set,
                                     const std::string& calibration_path,
                                     const ProfileOptions& options, const std::string& output_path,
                                     bool show_progress);

}  // namespace moa
