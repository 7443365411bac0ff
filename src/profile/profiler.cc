// The profiling loop (see profiler.h): resume from the profile file when it exists and was made
// with the same model, sinks and lengths; otherwise start from zeroed histograms. Samples still
// to do are dealt in rounds, one per rank; after each round rank 0 adds the round's histograms
// in sample order and rewrites the file, so a kill loses at most one round.
#include "profile/profiler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

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
  fresh.backward = BackwardWeights(model, options.exact_backward).mode();
  if (!std::filesystem::exists(path)) return fresh;
  InfluenceProfile old = read_profile(path);
  check_profile_matches(old, fresh.model, path);
  if (old.sinks != fresh.sinks) {
    fail("{}: made with {} sinks, this run uses {} (remove the file or match the sinks)", path,
         old.sinks, fresh.sinks);
  }
  if (old.backward != fresh.backward) {
    fail(
        "{}: made with the {} backward, this run uses {} (remove the file, or match it: "
        "--exact-backward gives exact; quantized weights on a CPU with the int8 GEMM give "
        "q8_0-transposes)",
        path, old.backward, fresh.backward);
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

// This process alone: rank 0 of 1.
class SingleProcess final : public SampleExchange {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void broadcast(std::vector<int64_t>&) override {}
  void send_to_root(std::span<const double>) override { fail("profile: no other process"); }
  void receive(int, std::span<double>) override { fail("profile: no other process"); }
};

int64_t positions_of(const CalibrationSample& s) {
  return static_cast<int64_t>(s.prompt.size() + s.answer.size()) - 1;
}

// A sample's histograms as the doubles sent between ranks: per layer |E| by distance, |E| of
// the sinks, E by distance, E of the sinks (n_head_kv x n distances each).
size_t packed_size(int64_t n_layer, int64_t n_head_kv, int64_t n) {
  return static_cast<size_t>(n_layer * 2 * n_head_kv * (n + 1));
}

std::vector<double> pack(const std::vector<kernels::InfluenceHistogram>& layers) {
  std::vector<double> out;
  for (const kernels::InfluenceHistogram& h : layers) {
    for (const std::vector<double>* v :
         {&h.by_distance, &h.sink, &h.signed_by_distance, &h.signed_sink}) {
      out.insert(out.end(), v->begin(), v->end());
    }
  }
  return out;
}

std::vector<kernels::InfluenceHistogram> unpack(std::span<const double> data, int64_t n_layer,
                                                int64_t n_head_kv, int64_t n) {
  std::vector<kernels::InfluenceHistogram> layers(static_cast<size_t>(n_layer));
  size_t at = 0;
  for (kernels::InfluenceHistogram& h : layers) {
    h.reset(n_head_kv, n);
    for (std::vector<double>* v :
         {&h.by_distance, &h.sink, &h.signed_by_distance, &h.signed_sink}) {
      std::copy_n(data.begin() + static_cast<ptrdiff_t>(at), v->size(), v->begin());
      at += v->size();
    }
  }
  return layers;
}

}  // namespace

namespace {

// The first number in `path` (-1 when unreadable or not a number, e.g. cgroup's "max").
int64_t read_number(const char* path) {
  std::ifstream in(path);
  int64_t value = -1;
  if (!(in >> value)) return -1;
  return value;
}

// Bytes this process's cgroup may still allocate (v2, then v1); -1 when it sets no limit.
int64_t cgroup_room() {
  for (const auto& [limit, usage] :
       {std::pair{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
        std::pair{"/sys/fs/cgroup/memory/memory.limit_in_bytes",
                  "/sys/fs/cgroup/memory/memory.usage_in_bytes"}}) {
    const int64_t max = read_number(limit), used = read_number(usage);
    if (max > 0 && used >= 0 && max < (int64_t{1} << 60)) return std::max<int64_t>(0, max - used);
  }
  return -1;
}

int64_t ranks_on_this_host() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"}) {
    if (const char* value = std::getenv(name)) return std::max<int64_t>(1, std::atoll(value));
  }
  return 1;
}

}  // namespace

int64_t default_memory_budget() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  while (meminfo >> key >> kib) {
    if (key == "MemAvailable:") break;
    meminfo.ignore(256, '\n');
    kib = 0;
  }
  int64_t available = kib * 1024;
  const int64_t room = cgroup_room();
  if (room >= 0) available = std::min(available, room);
  return available / 2 / ranks_on_this_host();
}

BackwardMemory plan_backward_memory(const Model& model, int64_t transposes_bytes,
                                    int64_t max_positions, int64_t budget) {
  const ModelConfig& c = model.config();
  if (budget < 0) budget = default_memory_budget();
  const KeptActivationBytes per_position = kept_activation_bytes(c);
  const int64_t all_activations =
      (per_position.attention + per_position.ffn) * max_positions * c.n_layer;
  BackwardMemory memory;
  memory.keep_transposes = all_activations + transposes_bytes <= budget;
  // Transposes rebuilt per layer hold one layer's worth at a time.
  const int64_t transposes_held = memory.keep_transposes
                                      ? transposes_bytes
                                      : transposes_bytes / std::max<int64_t>(1, c.n_layer);
  memory.keep_bytes = std::max<int64_t>(0, budget - transposes_held);
  return memory;
}

BackwardSetup prepare_backward(const Model& model, const ProfileOptions& options,
                               int64_t max_positions) {
  BackwardSetup setup{BackwardWeights(model, options.exact_backward), {}};
  const BackwardMemory memory = plan_backward_memory(model, setup.transposes.bytes_if_kept(),
                                                     max_positions, options.memory_budget);
  setup.options = {options.sinks, options.n_threads, memory.keep_bytes};
  if (memory.keep_transposes && max_positions > 0) setup.transposes.keep_all(options.n_threads);
  return setup;
}

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
                                     bool show_progress, SampleExchange* exchange) {
  SingleProcess alone;
  SampleExchange& ranks = exchange != nullptr ? *exchange : alone;
  const bool root = ranks.rank() == 0;
  check_profile_inputs(set, calibration_path, model, options);
  int64_t usable = 0;
  for (const CalibrationSample& s : set.samples) {
    if (!s.answer.empty()) {
      ++usable;
    } else if (root) {
      spdlog::warn("calibration sample {} of length {} has an empty answer; skipped", s.index,
                   s.length);
    }
  }
  if (usable == 0) fail("{}: no sample has answer tokens (nothing to profile)", calibration_path);

  // Rank 0 resumes the file and tells every rank which samples (positions in the set) remain;
  // {-1} when it could not, so that no rank waits for it.
  InfluenceProfile profile;
  std::vector<int64_t> pending;
  if (root) {
    try {
      profile = resume_or_start(model, set, calibration_path, options, output_path);
    } catch (const Error&) {
      pending = {-1};
      ranks.broadcast(pending);
      throw;
    }
    for (size_t i = 0; i < set.samples.size(); ++i) {
      const CalibrationSample& s = set.samples[i];
      if (!s.answer.empty() && !has_sample(profile.at_length(s.length), s.index)) {
        pending.push_back(static_cast<int64_t>(i));
      }
    }
  }
  ranks.broadcast(pending);
  if (pending == std::vector<int64_t>{-1}) fail("profile: rank 0 could not resume {}", output_path);

  const ModelConfig& c = model.config();
  int64_t max_positions = 0;
  for (const CalibrationSample& s : set.samples)
    max_positions = std::max(max_positions, positions_of(s));
  // With nothing left to do, no transposes are built.
  BackwardSetup backward = prepare_backward(model, options, pending.empty() ? 0 : max_positions);
  Progress progress("samples", usable, usable - static_cast<int64_t>(pending.size()),
                    show_progress && root);
  const auto n_ranks = static_cast<size_t>(ranks.size());
  for (size_t round = 0; round < pending.size(); round += n_ranks) {
    const size_t mine = round + static_cast<size_t>(ranks.rank());
    std::vector<kernels::InfluenceHistogram> own;
    if (mine < pending.size()) {
      const CalibrationSample& s = set.samples[static_cast<size_t>(pending[mine])];
      own =
          backward_sample(model, s.prompt, s.answer, backward.options, &backward.transposes).layers;
      if (!root) ranks.send_to_root(pack(own));
    }
    if (!root) continue;
    for (size_t r = 0; r < n_ranks && round + r < pending.size(); ++r) {
      const CalibrationSample& s = set.samples[static_cast<size_t>(pending[round + r])];
      const int64_t n = positions_of(s);
      std::vector<kernels::InfluenceHistogram> theirs;
      if (r > 0) {
        std::vector<double> data(packed_size(c.n_layer, c.n_head_kv, n));
        ranks.receive(static_cast<int>(r), data);
        theirs = unpack(data, c.n_layer, c.n_head_kv, n);
      }
      const std::vector<kernels::InfluenceHistogram>& layers = r == 0 ? own : theirs;
      ProfiledLength& entry = profile.at_length(s.length);
      for (size_t layer = 0; layer < entry.layers.size(); ++layer) {
        entry.layers[layer].add(layers[layer]);
      }
      entry.samples.push_back(s.index);
      progress.step(n);
    }
    write_profile(profile, output_path);
  }
  if (root && !std::filesystem::exists(output_path)) write_profile(profile, output_path);
  return profile;
}

}  // namespace moa
