// `moa profile bench`: the cost of profiling against the dense forward (issue 13's benchmark):
// per length, the seconds of the engine's dense prefill and of one sample's forward + backward
// with influence histograms, their ratio (goal <= 3), profiled tokens/s, and the profiling
// pass's peak resident memory, which grows linearly with the length (no N x N matrix).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "profile/profile_bench.h"
#include "util/error.h"
#include "util/json_fields.h"

namespace moa::cli {
namespace {

struct ProfileBenchOptions {
  ModelSource source;
  std::vector<int64_t> lengths = {1024, 2048, 4096};
  int repeats = 1;
  int n_threads = 0;
  bool json = false;
  bool map_model = false;
  int64_t memory_budget_mib = -1;
  bool exact_backward = false;
};

void print_header(const Model& model, const std::string& name, int n_threads, int repeats) {
  fmt::print("model: {} ({} layers, {} x {} heads)   threads: {}   best of {} run(s)\n", name,
             model.config().n_layer, model.config().n_head, model.config().n_head_kv, n_threads,
             repeats);
  fmt::print(
      "profile = one sample's forward (keeping what the memory budget allows) + backward with "
      "influence histograms; forward = the engine's dense prefill of the same tokens; kept = "
      "layers whose attention / FFN activations were kept rather than recomputed; setup = the "
      "weights' Q8_0 transposes, built once per run; peak RSS of the profiling pass (above = "
      "minus the resident size before it: model and transposes)\n\n");
  fmt::print(
      "| {:>6} | {:>10} | {:>10} | {:>8} | {:>12} | {:>9} | {:>7} | {:>14} | {:>14} | {:>11} | "
      "{:>13} |\n",
      "N", "forward s", "profile s", "ratio", "profile t/s", "kept", "setup s", "transposes MiB",
      "peak RSS MiB", "above MiB", "above KiB/tok");
  fmt::print(
      "|{:-<8}|{:-<12}|{:-<12}|{:-<10}|{:-<14}|{:-<11}|{:-<9}|{:-<16}|{:-<16}|{:-<13}|{:-<15}|\n",
      "", "", "", "", "", "", "", "", "", "", "");
  std::fflush(stdout);
}

void print_row(const ProfileCost& r) {
  constexpr double kMiB = 1024.0 * 1024.0;
  const double above = static_cast<double>(r.peak_rss - r.rss_before);
  const bool known = r.peak_rss >= 0;
  fmt::print(
      "| {:>6} | {:>10.3f} | {:>10.3f} | {:>7.2f}x | {:>12.1f} | {:>9} | {:>7.2f} | {:>14.0f} | "
      "{:>14} | {:>11} | {:>13} |\n",
      r.n_tokens, r.forward_seconds, r.profile_seconds, r.ratio(),
      static_cast<double>(r.n_tokens) / r.profile_seconds,
      fmt::format("{} / {}", r.kept_attention, r.kept_ffn), r.setup_seconds,
      static_cast<double>(r.transposes_bytes) / kMiB,
      known ? fmt::format("{:.0f}", static_cast<double>(r.peak_rss) / kMiB) : "-",
      known ? fmt::format("{:.0f}", above / kMiB) : "-",
      known ? fmt::format("{:.1f}", above / 1024.0 / static_cast<double>(r.n_tokens)) : "-");
  std::fflush(stdout);
}

void run_profile_bench(ProfileBenchOptions o) {
  if (o.repeats < 1) fail("-r: {} (expected >= 1)", o.repeats);
  if (o.lengths.empty()) fail("--lengths: give at least one length");
  const int64_t memory_budget = memory_budget_bytes(o.memory_budget_mib);  // before the model loads
  keep_freed_memory_for_reuse();                                           // as moa profile does
  const int n_threads = thread_count(o.n_threads);
  const std::string path = model_source_path(o.source);
  const Model model = Model::load(path, model_file_load(o.map_model));
  for (int64_t n : o.lengths) {
    if (n < 16 || n > model.config().n_ctx_train) {
      fail("--lengths: {} is outside 16 .. {} (the model's context)", n,
           model.config().n_ctx_train);
    }
  }
  const std::string name = std::filesystem::path(path).filename().string();
  std::vector<ProfileCost> rows;
  if (!o.json) print_header(model, name, n_threads, o.repeats);
  for (int64_t n : o.lengths) {
    spdlog::info("length {}: dense forward, then profiling one sample", n);
    rows.push_back(
        measure_profile_cost(model, n, {o.repeats, n_threads, o.exact_backward, memory_budget}));
    if (!o.json) print_row(rows.back());  // rows as they come: long lengths take minutes
  }
  if (o.json) {
    nlohmann::json j;
    j["model"] = name;
    j["threads"] = n_threads;
    for (const ProfileCost& r : rows) {
      j["results"].push_back({{"n_tokens", r.n_tokens},
                              {"forward_seconds", r.forward_seconds},
                              {"profile_seconds", r.profile_seconds},
                              {"ratio", r.ratio()},
                              {"kept_attention_layers", r.kept_attention},
                              {"kept_ffn_layers", r.kept_ffn},
                              {"setup_seconds", r.setup_seconds},
                              {"transposes_bytes", r.transposes_bytes},
                              {"profile_tokens_per_second", r.n_tokens / r.profile_seconds},
                              {"rss_before_bytes", r.rss_before},
                              {"peak_rss_bytes", r.peak_rss}});
    }
    fmt::print("{}\n", json_fields::json_text(j, 1));
  }
}

}  // namespace

void register_profile_bench(CLI::App& profile) {
  auto o = std::make_shared<ProfileBenchOptions>();
  CLI::App* cmd = profile.add_subcommand(
      "bench", "Profiling cost per sample vs the dense forward, and its peak memory, per length");
  add_model_source_options(*cmd, o->source);
  cmd->add_option("--layers", o->source.n_layer,
                  "Layers of the random model (default: the shape's; the ratio is per layer)");
  cmd->add_option("--lengths", o->lengths, "Sequence lengths, e.g. 1024,2048,4096")->delimiter(',');
  cmd->add_option("-r,--repetitions", o->repeats, "Runs per length (the best is reported)")
      ->capture_default_str();
  cmd->add_option("-t,--threads", o->n_threads,
                  fmt::format("Threads, 1 .. {} (default: all cores)", kMaxThreads));
  cmd->add_flag("--json", o->json, "Print JSON instead of a table");
  add_backward_memory_options(*cmd, o->memory_budget_mib, o->exact_backward);
  add_mmap_flag(*cmd, o->map_model);
  cmd->callback([o] { run_profile_bench(*o); });
}

}  // namespace moa::cli
