// The profiling loop (see profiler.h): resume from the profile file when it exists and was made
// with the same model, sinks and lengths; otherwise start from zeroed histograms.
#include "profile/profiler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "profile/sample_backward.h"
#include "util/error.h"
#include "util/progress.h"

namespace moa {
namespace {

ModelIdentity model_identity(const Model& model) {
  return identity_of(model.config(), model.file().metadata_hash());
}

// The existing profile at `path` when it continues this run; throws naming what differs.
InfluenceProfile resume_or_start(const Model& model, const CalibrationSet& set,
                                 const std::string& calibration_path, const ProfileOptions& options,
                                 const std::string& path) {
  InfluenceProfile fresh =
      empty_profile(model_identity(model), model.config().n_vocab, options.sinks,
                    std::filesystem::path(calibration_path).filename().string(), set.lengths);
  if (!std::filesystem::exists(path)) return fresh;
  InfluenceProfile old = read_profile(path);
  check_profile_matches(old, fresh.model, path);
  if (old.sinks != fresh.sinks) {
    fail("{}: made with {} sinks, this run uses {} (remove the file or match the sinks)", path,
         old.sinks, fresh.sinks);
  }
  std::vector<int64_t> old_lengths, new_lengths;
  for (const ProfiledLength& l : old.lengths) old_lengths.push_back(l.length);
  for (const ProfiledLength& l : fresh.lengths) new_lengths.push_back(l.length);
  if (old_lengths != new_lengths || old.calibration != fresh.calibration) {
    fail("{}: profiled lengths/calibration set differ from {} (remove the file to restart)", path,
         calibration_path);
  }
  return old;
}

bool has_sample(const ProfiledLength& l, int64_t index) {
  return std::find(l.samples.begin(), l.samples.end(), index) != l.samples.end();
}

}  // namespace

void check_profile_inputs(const CalibrationSet& set, const std::string& calibration_path,
                          const Model& model, const ProfileOptions& options) {
  check_calibration_matches(set, model_identity(model), model.config().n_vocab, calibration_path);
  if (options.sinks < 0) fail("sinks: {} is negative (expected >= 0)", options.sinks);
  for (int64_t n : set.lengths) {
    if (n > model.config().n_ctx_train) {
      fail("{}: length {} exceeds the model's context of {} tokens", calibration_path, n,
           model.config().n_ctx_train);
    }
    if (options.sinks >= n) {
      fail("sinks: {} is not below the profiled length {} (expected sinks < every length)",
           options.sinks, n);
    }
  }
  for (const CalibrationSample& s : set.samples) {
    if (static_cast<int64_t>(s.prompt.size() + s.answer.size()) > s.length) {
      fail("{}: sample {} of length {} holds {} tokens (more than its length)", calibration_path,
           s.index, s.length, s.prompt.size() + s.answer.size());
    }
  }
}

InfluenceProfile profile_calibration(const Model& model, const CalibrationSet& set,
                                     const std::string& calibration_path,
                                     const ProfileOptions& options, const std::string& output_path,
                                     bool show_progress) {
  check_profile_inputs(set, calibration_path, model, options);
  InfluenceProfile profile = resume_or_start(model, set, calibration_path, options, output_path);
  int64_t usable = 0, done = 0;
  for (const CalibrationSample& s : set.samples) {
    if (s.answer.empty()) {
      spdlog::warn("calibration sample {} of length {} has an empty answer; skipped", s.index,
                   s.length);
      continue;
    }
    ++usable;
    if (has_sample(profile.at_length(s.length), s.index)) ++done;
  }
  if (usable == 0) fail("{}: no sample has answer tokens (nothing to profile)", calibration_path);
  Progress progress("samples", usable, done, show_progress);
  for (const CalibrationSample& s : set.samples) {
    ProfiledLength& entry = profile.at_length(s.length);
    if (s.answer.empty() || has_sample(entry, s.index)) continue;
    const SampleInfluence influence =
        backward_sample(model, s.prompt, s.answer, options.sinks, options.n_threads);
    for (size_t layer = 0; layer < entry.layers.size(); ++layer) {
      entry.layers[layer].add(influence.layers[layer]);
    }
    entry.samples.push_back(s.index);
    write_profile(profile, output_path);
    progress.step(influence.n_tokens);
  }
  if (!std::filesystem::exists(output_path)) write_profile(profile, output_path);
  return profile;
}

}  // namespace moa
