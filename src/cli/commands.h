// Each `moa` subcommand lives in its own file and registers itself on the root CLI11 app.
// The callback it installs may throw moa::Error; main() turns that into `error: ...`, exit 1.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "engine/random_model.h"
#include "optimize/plan_optimizer.h"
#include "util/mapped_file.h"

namespace moa::cli {

void register_inspect(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_plan(CLI::App& app);
void register_bench(CLI::App& app);
void register_generate(CLI::App& app);
void register_calibrate(CLI::App& app);
void register_profile(CLI::App& app);
void register_profile_bench(CLI::App& profile);  // `moa profile bench`
void register_eval(CLI::App& app);
void register_report(CLI::App& app);
void register_optimize(CLI::App& app);
void register_compress(CLI::App& app);
void register_answer_loss(CLI::App& app);

// `--random NAME` of moa bench and moa profile bench: random-weight models with the shapes of
// real ones (small, llama-1b, qwen2-0.5b), and `--random-type`; both throw naming the flag.
RandomModelSpec random_shape(const std::string& name);
gguf::TensorType parse_weight_type(const std::string& name);

// The benches' model: -m FILE, or --random SHAPE [--random-type T] (n_layer > 0: fewer layers).
struct ModelSource {
  std::string model_path;
  std::string random_shape;
  std::string random_type = "q8_0";
  int64_t n_layer = 0;
};
void add_model_source_options(CLI::App& cmd, ModelSource& source);
// The file to load: -m's, or the random model's, built once in the system temp folder.
std::string model_source_path(const ModelSource& source);

// `--seed`: a whole number 0 .. 2^63 - 1 as written ("-1" and 2^64 are refused, not wrapped); the
// files that record a seed (calibration sets, results) hold it as a signed 64-bit JSON integer.
CLI::Option* add_seed_option(CLI::App& cmd, uint64_t& seed, const std::string& description);

// `--mmap`: map the model file instead of reading it into huge pages.
void add_mmap_flag(CLI::App& cmd, bool& map_model);
// --memory-budget MIB and --exact-backward of moa profile and moa profile bench (the profiler's
// kept activations and weight transposes: profile/profiler.h); budget_mib -1 means the default.
void add_backward_memory_options(CLI::App& cmd, int64_t& budget_mib, bool& exact);
// Bytes of --memory-budget's MiB (-1 stays -1); throws naming the flag when out of range.
int64_t memory_budget_bytes(int64_t budget_mib);
// Freed big blocks stay in malloc's heap for the next layer and sample (docs/profile.md).
void keep_freed_memory_for_reuse();
FileLoad model_file_load(bool map_model);

// llama.cpp's limit (GGML_MAX_N_THREADS): far more threads than cores only slows a run down, and
// libgomp crashes or aborts when it cannot create them.
inline constexpr int kMaxThreads = 512;
// `-t` checked: 1 .. kMaxThreads, or 0 for every core; throws naming -t otherwise.
int thread_count(int requested);

// The flag of `command` (e.g. "bench") that carries a library InputError's field (e.g.
// "density" -> "--density"); the field itself when no flag carries it.
std::string flag_for_field(std::string_view command, std::string_view field);

// `--alpha-step`, `--points`, `--time-limit` and `--gap` of `moa optimize` and `moa compress`.
void add_solver_options(CLI::App& cmd, OptimizeOptions& options);
// Fails naming --points, --time-limit or --gap when one is out of range.
void check_solver_options(const OptimizeOptions& options);

// The optimizer's candidate table (`moa optimize`, `moa compress`): profiled loss per length,
// density per budget, validation loss (when validation_length > 0), solver status, the choice.
void print_candidates(const OptimizeResult& r, const std::vector<int64_t>& profiled,
                      const std::vector<DensityBudget>& budgets, size_t chosen,
                      int64_t validation_length);

// Reads all of standard input (used when no -p/-f is given).
std::string read_stdin();
// Reads a whole regular file; throws moa::Error naming it when it cannot be read.
std::string read_text_file(const std::string& path);

}  // namespace moa::cli
