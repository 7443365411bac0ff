// `moa profile`: profiles a calibration set's attention influence (METHOD.md s.3) into a profile
// file, resuming a killed run; `moa profile show` prints, per length, layer and KV head, the
// distances within which 50/90/99% of the head's (non-sink) influence lies, and the sinks' share.
// Under `mpirun -np K` (a build with MPI) the K ranks share the samples; rank 0 writes the file.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "cli/commands.h"
#include "plan/plan.h"
#include "profile/mpi_exchange.h"
#include "profile/profiler.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace moa::cli {
namespace {

struct ProfileCliOptions {
  std::string model_path;
  std::string calibration_path;
  std::string output;
  std::string show_path;
  bool map_model = false;
  int n_threads = 0;
  int64_t memory_budget_mib = -1;
  ProfileOptions run;
};

void show_profile(const std::string& path) {
  const InfluenceProfile p = read_profile(path);
  fmt::print("{}: {} layers x {} KV heads, {} sinks, calibration {}\n", path, p.model.n_layer,
             p.model.n_head_kv, p.sinks, p.calibration);
  for (const ProfiledLength& l : p.lengths) {
    fmt::print("\nlength {} ({} samples)\n", l.length, l.sample_count());
    fmt::print("| layer | kv head | span 50% | span 90% | span 99% | sink share | influence |\n");
    fmt::print("|---|---|---|---|---|---|---|\n");
    for (size_t layer = 0; layer < l.layers.size(); ++layer) {
      const kernels::InfluenceHistogram& h = l.layers[layer];
      for (int64_t g = 0; g < h.n_head_kv; ++g) {
        const double band = h.tail_sum(g, 0), sink = h.sink[static_cast<size_t>(g)];
        const double share = band + sink > 0.0 ? sink / (band + sink) : 0.0;
        const double per_sample = l.samples.empty() ? 0.0 : (band + sink) / l.sample_count();
        fmt::print("| {} | {} | {} | {} | {} | {:.3f} | {:.4g} |\n", layer, g,
                   p.span_holding(l.length, static_cast<int64_t>(layer), g, 0.5),
                   p.span_holding(l.length, static_cast<int64_t>(layer), g, 0.9),
                   p.span_holding(l.length, static_cast<int64_t>(layer), g, 0.99), share,
                   per_sample);
      }
    }
  }
}

void report_written(const InfluenceProfile& p, const std::string& output) {
  int64_t samples = 0;
  for (const ProfiledLength& l : p.lengths) samples += l.sample_count();
  fmt::print(stderr, "wrote {} ({} samples over {} lengths)\n", output, samples, p.lengths.size());
}

void run_profile(ProfileCliOptions& o) {
  if (o.model_path.empty()) fail("-m: give the model the calibration set was made for");
  if (o.calibration_path.empty()) fail("--calib: give the calibration set (moa calibrate)");
  if (o.output.empty()) fail("-o: give the profile's output path");
  thread_count(o.n_threads);  // checks -t; 0 (all cores) is shared among ranks below
  if (o.run.sinks < 0) fail("--sinks: {} is negative (expected >= 0)", o.run.sinks);
  o.run.memory_budget = memory_budget_bytes(o.memory_budget_mib);
  keep_freed_memory_for_reuse();
  const std::unique_ptr<MpiExchange> mpi = mpi_exchange_if_launched();
  try {
    // Ranks on one machine share its cores.
    const int ranks_here = mpi != nullptr ? mpi->local_size() : 1;
    o.run.n_threads =
        o.n_threads > 0 ? o.n_threads : std::max(1, default_thread_count() / ranks_here);
    keep_from_overwrite(o.calibration_path);
    const CalibrationSet set = read_calibration(o.calibration_path);
    check_calibration_complete(set, o.calibration_path);
    const Model model = Model::load(o.model_path, model_file_load(o.map_model));
    check_output_path(o.output);
    try {
      check_profile_inputs(set, o.calibration_path, model, o.run);
    } catch (const Error& e) {
      fail("--calib/--sinks: {}", e.what());
    }
    const InfluenceProfile p = profile_calibration(model, set, o.calibration_path, o.run, o.output,
                                                   isatty(STDERR_FILENO) != 0, mpi.get());
    if (mpi == nullptr || mpi->rank() == 0) report_written(p, o.output);
  } catch (const Error& e) {
    if (mpi != nullptr && mpi->size() > 1) mpi->abort_with_error(e.what());
    throw;
  }
}

}  // namespace

void register_profile(CLI::App& app) {
  auto o = std::make_shared<ProfileCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "profile", "Profile attention influence by backpropagation over a calibration set");
  cmd->add_option("-m,--model", o->model_path, "GGUF model file");
  cmd->add_option("--calib", o->calibration_path, "Calibration set (moa calibrate)");
  cmd->add_option("-o,--output", o->output, "Profile file to write (resumed if present)");
  cmd->add_option("--sinks", o->run.sinks, "Sink tokens G (global keys a plan never masks)")
      ->capture_default_str();
  cmd->add_option("-t,--threads", o->n_threads, "Threads (default: all cores)");
  add_backward_memory_options(*cmd, o->memory_budget_mib, o->run.exact_backward);
  add_mmap_flag(*cmd, o->map_model);
  CLI::App* show =
      cmd->add_subcommand("show", "Spans holding 50/90/99% of each head's influence, per length");
  show->add_option("profile", o->show_path, "Profile file")->required();
  show->callback([o] { show_profile(o->show_path); });
  register_profile_bench(*cmd);
  cmd->callback([o, show, cmd] {
    if (show->parsed() || cmd->get_subcommand("bench")->parsed()) return;
    run_profile(*o);
  });
}

}  // namespace moa::cli
