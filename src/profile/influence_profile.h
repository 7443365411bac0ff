// The influence profile (METHOD.md s.3): for each profiled length N, layer and KV head, the
// attention influence |E| summed over calibration samples by distance i - j (keys j >= G),
// plus the sink keys' share (and beside them the signed E: the first-order loss change
// itself, version 2). The loss of masking a head beyond span S at N is a suffix sum of
// its histogram, so one profile prices every candidate rule at every profiled length: the
// optimizer's only input besides the model's shape. The file is one JSON header line followed
// by the histograms as little-endian float64 (docs/profile.md); it also records which
// calibration samples are summed in, so an interrupted `moa profile` resumes.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernels/attention_backward.h"
#include "plan/plan.h"

namespace moa {

struct ProfiledLength {
  int64_t length = 0;                               // N: the samples' prompt + answer budget
  std::vector<int64_t> samples;                     // calibration sample indices summed in
  std::vector<kernels::InfluenceHistogram> layers;  // [layer]: n_head_kv x N distances, sums

  int64_t sample_count() const { return static_cast<int64_t>(samples.size()); }
};

struct InfluenceProfile {
  static constexpr int kFormatVersion = 2;  // 2: signed histograms added
  ModelIdentity model;
  int64_t n_vocab = 0;
  int64_t sinks = 0;        // G: keys j < G were counted as sinks (a plan never masks them)
  std::string calibration;  // the calibration set's file name (for reports)
  // How W^T dy was multiplied: "exact" (F32 panels) or "q8_0-transposes" (BackwardWeights);
  // samples of one profile must agree. Files without the field were made exact.
  std::string backward = "exact";
  std::vector<ProfiledLength> lengths;  // ascending

  // The entry for length n; throws naming the profiled lengths when n was not profiled.
  const ProfiledLength& at_length(int64_t n) const;
  ProfiledLength& at_length(int64_t n) {
    return const_cast<ProfiledLength&>(std::as_const(*this).at_length(n));
  }
  // Mean over samples of the influence a band of `span` hides on (layer, kv_head) at length n:
  // the suffix sum of the head's histogram from distance `span` (0 when span >= n).
  double masked_influence(int64_t n, int64_t layer, int64_t kv_head, int64_t span) const;
  // Mean over samples of the first-order loss change of that mask (the signed E's suffix sum):
  // negative where the band on balance misleads the answer.
  double masked_loss_change(int64_t n, int64_t layer, int64_t kv_head, int64_t span) const;
  // Mean influence of every non-sink key of the head (what span 0 would hide), and of its sinks.
  double total_influence(int64_t n, int64_t layer, int64_t kv_head) const;
  // Smallest span S whose band (distances < S) holds `fraction` of the head's non-sink
  // influence at length n (0 when the head has none).
  int64_t span_holding(int64_t n, int64_t layer, int64_t kv_head, double fraction) const;
  double sink_influence(int64_t n, int64_t layer, int64_t kv_head) const;
};

// A profile with zeroed histograms for every length (no samples yet).
InfluenceProfile empty_profile(const ModelIdentity& model, int64_t n_vocab, int64_t sinks,
                               const std::string& calibration, std::vector<int64_t> lengths);

void write_profile(const InfluenceProfile& profile, const std::string& path);  // atomically
// Checks the header field by field and the payload's size; errors name the file and field.
InfluenceProfile read_profile(const std::string& path);

// Throws naming the file when the profile was made for another model.
void check_profile_matches(const InfluenceProfile& profile, const ModelIdentity& model,
                           const std::string& file);

}  // namespace moa
