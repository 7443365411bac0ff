// `moa bench`: prefill and decode throughput at several cache depths and batch sizes, with the
// machine's measured memory bandwidth and sgemm peak as the yardsticks (like llama-bench).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "eval/busy_neighbour.h"
#include "eval/eval_results.h"
#include "eval/throughput.h"
#include "gguf/quant.h"
#include "kernels/bandwidth.h"
#include "kernels/peak_probe.h"
#include "util/error.h"
#include "util/json_fields.h"

namespace moa::cli {
namespace {

struct BenchOptions {
  ModelSource source;
  ThroughputConfig throughput;
  std::vector<std::string> kv_types = {"f16"};  // every method runs with each, in one run
  bool json = false;
  bool map_model = false;  // --mmap
  bool busy_neighbour = false;
  std::vector<std::string> methods = {"dense"};
  AttentionMethod sparse;  // --plan, --density, --sinks shared by the sparse methods
};

std::string type_summary(const Model& model) {
  return gguf::tensor_type_name(static_cast<uint32_t>(model.weights().layers.at(0).ffn_up.type));
}

// The best of the run's probes of one kind (a machine figure; each row uses its own probes). A
// run without tests of that kind (no decode for the bandwidth, no prefill for the sgemm peak)
// probes once.
double best_probe(const std::vector<ThroughputResult>& results, double ThroughputResult::*probe,
                  double (*measure)(int), int n_threads) {
  double best = 0.0;
  for (const ThroughputResult& r : results) best = std::max(best, r.*probe);
  return best > 0.0 ? best : measure(n_threads);
}

// The KV types of the rows, in run order: "f16" or "f16,q8_0".
std::string kv_types_label(const std::vector<ThroughputResult>& results) {
  std::vector<std::string> names;
  for (const ThroughputResult& r : results) {
    const std::string name = kv_type_name(r.kv_type);
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  return fmt::format("{}", fmt::join(names, ","));
}

void print_model_line(const Model& model, const std::string& model_name,
                      const ThroughputConfig& cfg, const std::string& kv_label) {
  fmt::print("model: {} ({}, {} layers, {} x {} heads)   threads: {}   kv: {}\n", model_name,
             type_summary(model), model.config().n_layer, model.config().n_head,
             model.config().n_head_kv, cfg.n_threads, kv_label);
}

void print_results(const Model& model, const std::string& model_name, const ThroughputConfig& cfg,
                   const std::vector<ThroughputResult>& results, double bandwidth, double sgemm,
                   const kernels::Int8Peak& int8) {
  print_model_line(model, model_name, cfg, kv_types_label(results));
  fmt::print(
      "machine: memory bandwidth up to {:.1f} GB/s, OpenBLAS sgemm peak ({} kernels) up to {:.1f} "
      "GFLOP/s, int8 dot peak ({}) up to {:.1f} GOP/s (probed around every decode / prefill "
      "repeat, the int8 peak around every prefill row; a row's bound and % are medians over its "
      "repeats)\n",
      bandwidth, sgemm_kernel_name(), sgemm, kernels::int8_dot_isa_name(int8.isa), int8.gops);
  fmt::print(
      "each row is planned and its cache sized for N = depth + test tokens; decode GB/s counts "
      "the weights + the K/V a step attends (KV MiB read, mean per step), not the cache "
      "allocated (KV MiB)\n\n");
  fmt::print(
      "| {:<34} | {:>4} | {:>7} | {:>6} | {:>5} | {:>10} | {:>9} | {:>14} | {:>14} | {:>10} | "
      "{:>10} | {:>9} | {:>10} | {:>11} |\n",
      "method", "kv", "test", "depth", "batch", "t/s", "ms/tok", "GB/s, GFLOP/s", "bound",
      "% of bound", "int8 peak", "% of int8", "KV MiB", "KV MiB read");
  fmt::print(
      "|{:-<36}|{:-<6}|{:-<9}|{:-<8}|{:-<7}|{:-<12}|{:-<11}|{:-<16}|{:-<16}|{:-<12}|{:-<12}|{:-<11}"
      "|{:-<"
      "12}|{:-<13}|\n",
      "", "", "", "", "", "", "", "", "", "", "", "", "", "");
  for (const ThroughputResult& r : results) {
    const bool decode = r.test.starts_with("tg");
    const double rate = decode ? r.gigabytes_per_second : r.gflops;
    const double bound = decode ? r.bandwidth_gbs : r.sgemm_gflops;
    const double fraction = r.fraction_of_bound;
    constexpr double kMiB = 1024.0 * 1024.0;
    const std::string kv_read =
        decode ? fmt::format("{:.2f}", r.kv_bytes_read_per_step / kMiB) : std::string("-");
    // Prefill only: effective GFLOP/s over the int8 dot-product peak (decode is memory bound).
    const std::string int8_peak =
        decode ? std::string("-") : fmt::format("{:.1f}", r.int8_peak_gops);
    const std::string int8_share =
        decode ? std::string("-") : fmt::format("{:.0f}%", 100.0 * r.fraction_of_int8_peak);
    fmt::print(
        "| {:<34} | {:>4} | {:>7} | {:>6} | {:>5} | {:>10.2f} | {:>9.3f} | {:>14.1f} | {:>14.1f} | "
        "{:>9.0f}% | {:>10} | {:>9} | {:>10.2f} | {:>11} |\n",
        r.method, kv_type_name(r.kv_type), r.test, r.depth, r.batch, r.tokens_per_second,
        1000.0 / r.tokens_per_second, rate, bound, 100.0 * fraction, int8_peak, int8_share,
        static_cast<double>(r.kv_cache_bytes) / kMiB, kv_read);
  }
}

nlohmann::json results_json(const Model& model, const std::string& model_name,
                            const ThroughputConfig& cfg,
                            const std::vector<ThroughputResult>& results, double bandwidth,
                            double sgemm, const kernels::Int8Peak& int8) {
  nlohmann::json j;
  j["model"] = model_name;
  j["weight_type"] = type_summary(model);
  j["threads"] = cfg.n_threads;
  j["kv_type"] = kv_types_label(results);
  j["memory_bandwidth_gbs"] = bandwidth;
  j["sgemm_peak_gflops"] = sgemm;
  j["sgemm_kernels"] = sgemm_kernel_name();
  j["int8_peak_gops"] = int8.gops;
  j["int8_peak_isa"] = kernels::int8_dot_isa_name(int8.isa);
  j["results"] = throughput_rows_json(results);
  return j;
}

void run_busy_neighbour(const Model& model, const std::string& name, const BenchOptions& o) {
  const std::vector<BusyNeighbourRow> rows = measure_busy_neighbour(
      model, o.throughput, [](const std::string& line) { spdlog::info("{}", line); });
  if (o.json) {
    nlohmann::json j;
    j["model"] = name;
    j["weight_type"] = type_summary(model);
    j["threads"] = o.throughput.n_threads;
    j["kv_type"] = kv_type_name(o.throughput.kv_type);
    j["busy_neighbour"] = nlohmann::json::array();
    for (const BusyNeighbourRow& r : rows) {
      j["busy_neighbour"].push_back({{"method", r.quiet.method},
                                     {"test", r.quiet.test},
                                     {"depth", r.quiet.depth},
                                     {"batch", r.quiet.batch},
                                     {"quiet_tokens_per_second", r.quiet.tokens_per_second},
                                     {"loaded_tokens_per_second", r.loaded.tokens_per_second},
                                     {"loaded_over_quiet_time", r.slowdown()}});
    }
    fmt::print("{}\n", json_fields::json_text(j, 1));
    return;
  }
  print_model_line(model, name, o.throughput, kv_type_name(o.throughput.kv_type));
  fmt::print(
      "each row timed on the machine as it is (quiet), then with one process spinning on a core "
      "(loaded); loaded/quiet is the ratio of median times (1.00 = unaffected)\n\n");
  fmt::print("| {:<34} | {:>7} | {:>6} | {:>5} | {:>12} | {:>12} | {:>12} |\n", "method", "test",
             "depth", "batch", "quiet ms/tok", "loaded ms/tok", "loaded/quiet");
  fmt::print("|{:-<36}|{:-<9}|{:-<8}|{:-<7}|{:-<14}|{:-<14}|{:-<14}|\n", "", "", "", "", "", "",
             "");
  for (const BusyNeighbourRow& r : rows) {
    fmt::print("| {:<34} | {:>7} | {:>6} | {:>5} | {:>12.3f} | {:>12.3f} | {:>12.2f} |\n",
               r.quiet.method, r.quiet.test, r.quiet.depth, r.quiet.batch,
               1000.0 / r.quiet.tokens_per_second, 1000.0 / r.loaded.tokens_per_second,
               r.slowdown());
  }
}

void run_bench(BenchOptions o) {
  o.throughput.n_threads = thread_count(o.throughput.n_threads);
  o.throughput.methods.clear();
  for (const std::string& name : o.methods) {
    AttentionMethod m = o.sparse;
    m.kind = parse_attention_kind(name);
    if (m.kind != AttentionKind::kMoa) m.plan_path.clear();
    o.throughput.methods.push_back(m);
  }
  const std::string path = model_source_path(o.source);
  const Model model = Model::load(path, model_file_load(o.map_model));
  const std::string name = std::filesystem::path(path).filename().string();
  if (o.busy_neighbour) {
    if (o.kv_types.size() != 1) throw Error("--busy-neighbour: give one --kv-type");
    o.throughput.kv_type = parse_kv_type(o.kv_types.front());
    run_busy_neighbour(model, name, o);
    return;
  }
  o.throughput.probe_machine = true;
  std::vector<ThroughputResult> results;
  for (const std::string& kv_type : o.kv_types) {
    o.throughput.kv_type = parse_kv_type(kv_type);
    auto rows = measure_throughput(model, o.throughput,
                                   [](const std::string& line) { spdlog::info("{}", line); });
    results.insert(results.end(), rows.begin(), rows.end());
  }
  const double bandwidth =
      best_probe(results, &ThroughputResult::bandwidth_gbs, kernels::measure_memory_bandwidth_gbs,
                 o.throughput.n_threads);
  const double sgemm = best_probe(results, &ThroughputResult::sgemm_gflops, measure_sgemm_gflops,
                                  o.throughput.n_threads);
  kernels::Int8Peak int8{0.0, kernels::best_int8_dot_isa()};
  for (const ThroughputResult& r : results) int8.gops = std::max(int8.gops, r.int8_peak_gops);
  if (int8.gops == 0.0) int8 = kernels::measure_int8_peak(o.throughput.n_threads);
  if (o.json) {
    fmt::print("{}\n",
               json_fields::json_text(
                   results_json(model, name, o.throughput, results, bandwidth, sgemm, int8), 1));
  } else {
    print_results(model, name, o.throughput, results, bandwidth, sgemm, int8);
  }
}

}  // namespace

void register_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  o->throughput.n_threads = 0;  // all cores unless -t says otherwise
  CLI::App* cmd = app.add_subcommand(
      "bench", "Prefill/decode throughput at several context depths and batch sizes");
  add_model_source_options(*cmd, o->source);
  cmd->add_option("-p,--n-prompt", o->throughput.n_prompt, "Prefill test tokens (0 = skip)")
      ->capture_default_str();
  cmd->add_option("-n,--n-gen", o->throughput.n_gen, "Decode test tokens (0 = skip)")
      ->capture_default_str();
  cmd->add_option("-r,--repetitions", o->throughput.repeats,
                  "Repeats per test (the median is reported)")
      ->capture_default_str();
  cmd->add_option("--ctx,--depth", o->throughput.depths,
                  "Cache depths to test at, e.g. 0,1024,4096")
      ->delimiter(',');
  cmd->add_option("-b,--batch", o->throughput.batches, "Decode batch sizes, e.g. 1,4")
      ->delimiter(',');
  cmd->add_option("-t,--threads", o->throughput.n_threads,
                  fmt::format("Threads, 1 .. {} (default: all cores)", kMaxThreads));
  cmd->add_option("--kv-type", o->kv_types,
                  "KV cache storage: f32, f16 or q8_0; a list (f16,q8_0) runs every row with each")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON instead of a table");
  cmd->add_flag("--busy-neighbour", o->busy_neighbour,
                "Time every row twice, the second time with a process spinning on one core, and "
                "print loaded/quiet");
  add_mmap_flag(*cmd, o->map_model);
  cmd->add_option("--method", o->methods,
                  "Attention methods side by side, e.g. dense,streaming,moa,h2o")
      ->delimiter(',');
  cmd->add_option("--plan", o->sparse.plan_path, "Plan file for method moa");
  cmd->add_option("--density", o->sparse.density,
                  "streaming, h2o: KV density (0, 1], sinks included, at depth + test size")
      ->capture_default_str();
  cmd->add_option("--sinks", o->sparse.sinks, "streaming: sink tokens G (counted in --density)")
      ->capture_default_str();
  cmd->callback([o] { run_bench(*o); });
}

}  // namespace moa::cli
