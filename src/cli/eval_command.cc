// `moa eval retrieval|ppl|speed`: retrieval accuracy by length and needle depth (LongEval lines,
// passkey, key-value), perplexity with llama-perplexity's windowing, and decode / prefill speed
// with KV bytes, each for several attention methods side by side, written as a results file
// that `moa report` draws (docs/eval.md).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "eval/eval_results.h"
#include "eval/perplexity.h"
#include "eval/retrieval_run.h"
#include "eval/throughput.h"
#include "kv/kv_cache.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/json_fields.h"
#include "util/progress.h"

namespace moa::cli {
namespace {

using nlohmann::json;

// Flags every eval subcommand shares.
struct CommonOptions {
  std::string model_path;
  std::vector<std::string> methods = {"dense"};
  double density = 0.5;
  int64_t sinks = 4;
  int n_threads = 0;
  std::string kv_type = "f16";
  std::string output;
  bool map_model = false;
};

void add_common(CLI::App& cmd, CommonOptions& o) {
  cmd.add_option("-m,--model", o.model_path, "GGUF model file")->required();
  cmd.add_option("--methods", o.methods,
                 "Attention methods side by side: dense, streaming, h2o, moa:PLAN, binary:PLAN")
      ->delimiter(',')
      ->capture_default_str();
  cmd.add_option("--density", o.density,
                 "streaming, h2o: KV density (0, 1], sinks included, at each case's N")
      ->capture_default_str();
  cmd.add_option("--sinks", o.sinks, "streaming: sink tokens G (counted in --density)")
      ->capture_default_str();
  cmd.add_option("-t,--threads", o.n_threads, "Threads (default: all cores)");
  cmd.add_option("--kv-type", o.kv_type, "KV cache storage: f32, f16 or q8_0")
      ->capture_default_str();
  cmd.add_option("-o,--output", o.output, "Results JSON file (retrieval runs resume from it)");
  add_mmap_flag(cmd, o.map_model);
}

std::vector<EvalMethod> eval_methods(const CommonOptions& o) {
  if (!(o.density > 0.0 && o.density <= 1.0)) {
    fail("--density: {} is not a density (expected a value in (0, 1])", o.density);
  }
  std::vector<EvalMethod> methods;
  for (const std::string& spec : o.methods) {
    try {
      methods.push_back(parse_eval_method(spec, o.density, o.sinks));
    } catch (const Error& e) {
      fail("--methods: {}", e.what());
    }
  }
  if (methods.empty()) fail("--methods: give at least one method");
  return methods;
}

// The model, then -o checked (after the model, which it may not name) before any evaluation.
Model load_model(const CommonOptions& o) {
  Model model = Model::load(o.model_path, model_file_load(o.map_model));
  if (!o.output.empty()) check_output_path(o.output);
  return model;
}

RetrievalConfig run_config(const CommonOptions& o) {
  RetrievalConfig c;
  c.n_threads = thread_count(o.n_threads);
  c.kv_type = parse_kv_type(o.kv_type);
  return c;
}

struct RetrievalOptions {
  CommonOptions common;
  std::string task = "lines";
  std::vector<int64_t> lengths = {1024};
  int64_t n = 10;
  std::string cases_file;
  std::string answer_prefix;
  int64_t answer_tokens = 8;
  uint64_t seed = 1;
  double threshold = 0.9;
};

void print_retrieval(const RetrievalRun& run, const std::string& unit) {
  fmt::print("| {:<28} | {:>9} | {:>9} | {:>8} | {:>16} |\n", "method", "length", "accuracy",
             "cases", "effective length");
  fmt::print("|{:-<30}|{:-<11}|{:-<11}|{:-<10}|{:-<18}|\n", "", "", "", "", "");
  for (const MethodSummary& s : run.summary) {
    for (const auto& [length, a] : s.by_length) {
      fmt::print("| {:<28} | {:>9} | {:>9.3f} | {:>8} | {:>16} |\n", s.method,
                 fmt::format("{} {}", length, unit == "lines" ? "ln" : "tok"), a.value(), a.count,
                 s.effective_length > 0
                     ? fmt::format("{} ({:.2f}x span)", s.effective_length, s.effective_ratio)
                     : "none");
    }
  }
}

void run_eval_retrieval(const RetrievalOptions& o) {
  const std::vector<EvalMethod> methods = eval_methods(o.common);
  RetrievalConfig config = run_config(o.common);
  if (o.answer_tokens < 1 || o.answer_tokens > 256) {
    fail("--answer-tokens: {} is not a token budget (expected 1 .. 256)", o.answer_tokens);
  }
  if (!(o.threshold > 0.0 && o.threshold <= 1.0)) {
    fail("--threshold: {} is not an accuracy (expected a value in (0, 1])", o.threshold);
  }
  config.answer_tokens = o.answer_tokens;
  const TaskKind kind = parse_task_kind(o.task);
  const Model model = load_model(o.common);
  RetrievalSettings settings;
  settings.task = std::string(task_kind_name(kind));
  settings.model = o.common.model_path;
  settings.model_hash = model.file().metadata_hash();
  settings.answer_prefix = o.answer_prefix;
  settings.seed = o.seed;
  settings.n = o.n;
  settings.answer_tokens = o.answer_tokens;
  settings.threshold = o.threshold;
  std::vector<RetrievalCase> cases;
  if (!o.cases_file.empty()) {
    cases = parse_retrieval_cases(read_text_file(o.cases_file), o.cases_file, model.tokenizer(),
                                  o.answer_prefix, settings.length_unit);
    settings.cases_file = o.cases_file;
    settings.cases_hash = file_hash(o.cases_file);
    settings.n = static_cast<int64_t>(cases.size());
    for (const RetrievalCase& c : cases) {
      if (std::find(settings.lengths.begin(), settings.lengths.end(), c.length) ==
          settings.lengths.end())
        settings.lengths.push_back(c.length);
    }
  } else {
    if (o.n < 1) fail("-n: {} cases per length (expected at least 1)", o.n);
    for (int64_t length : o.lengths) {
      if (length < 16 || length + o.answer_tokens > model.config().n_ctx_train) {
        fail(
            "--lengths: {} + {} answer tokens is beyond the model's context of {} tokens "
            "(expected 16 .. {})",
            length, o.answer_tokens, model.config().n_ctx_train,
            model.config().n_ctx_train - o.answer_tokens);
      }
    }
    settings.lengths = o.lengths;
    cases = make_retrieval_cases(kind, model.tokenizer(), o.lengths, o.n, o.seed, o.answer_prefix);
  }
  const int64_t n_check =
      static_cast<int64_t>(model.tokenizer().encode(cases.front().prompt, true, false).size()) +
      o.answer_tokens;
  describe_methods(model, methods, std::min(n_check, model.config().n_ctx_train), settings);
  const RetrievalRun run = run_retrieval(model, settings, methods, cases, config, o.common.output);
  if (run.resumed > 0)
    spdlog::info("resumed {} finished cases from {}", run.resumed, o.common.output);
  print_retrieval(run, settings.length_unit);
}

struct PplOptions {
  CommonOptions common;
  std::string text_file;
  int64_t n_ctx = 512;
  int64_t stride = 0;
};

void run_eval_ppl(const PplOptions& o) {
  const std::vector<EvalMethod> methods = eval_methods(o.common);
  const RetrievalConfig config = run_config(o.common);
  keep_from_overwrite(o.text_file);
  const std::string text = read_text_file(o.text_file);
  const Model model = load_model(o.common);
  if (o.n_ctx < 4 || o.n_ctx > model.config().n_ctx_train) {
    fail("--ctx: {} is not a context for this model (expected 4 .. {})", o.n_ctx,
         model.config().n_ctx_train);
  }
  if (o.stride < 0 || o.stride >= o.n_ctx) {
    fail("--stride: {} is not a stride for --ctx {} (expected 1 .. {}, or 0 for chunks)", o.stride,
         o.n_ctx, o.n_ctx - 1);
  }
  const std::vector<TokenId> tokens = model.tokenizer().encode(text, true, false);
  // Too short a text or a bad stride fails before any work.
  const int64_t n_chunks = static_cast<int64_t>(
      perplexity_chunks(static_cast<int64_t>(tokens.size()), o.n_ctx, o.stride).size());
  RetrievalSettings described;
  describe_methods(model, methods, o.n_ctx, described);
  json results = json::array();
  fmt::print("| {:<28} | {:>10} | {:>9} | {:>6} | {:>7} |\n", "method", "PPL", "± error", "chunks",
             "scored");
  fmt::print("|{:-<30}|{:-<12}|{:-<11}|{:-<8}|{:-<9}|\n", "", "", "", "", "");
  for (const EvalMethod& m : methods) {
    Progress progress(m.name + " chunks", n_chunks);
    const PerplexityResult r = measure_perplexity(model, m, tokens, o.n_ctx, o.stride, config,
                                                  [&](int64_t) { progress.step(o.n_ctx); });
    fmt::print("| {:<28} | {:>10.4f} | {:>9.5f} | {:>6} | {:>7} |\n", m.name, r.ppl, r.ppl_error,
               r.n_chunks, r.n_scored);
    results.push_back({{"method", m.name},
                       {"ppl", r.ppl},
                       {"ppl_error", r.ppl_error},
                       {"mean_nll", r.mean_nll},
                       {"n_chunks", r.n_chunks},
                       {"n_scored", r.n_scored},
                       {"running_ppl", r.running_ppl},
                       {"kv_density", r.kv_density}});
  }
  if (o.common.output.empty()) return;
  json settings = settings_json(described);
  json out{{"kind", "perplexity"},
           {"moa_version", kMoaVersion},
           {"model", o.common.model_path},
           {"model_hash", model.file().metadata_hash()},
           {"text_file", o.text_file},
           {"text_hash", file_hash(o.text_file)},
           {"n_tokens", tokens.size()},
           {"n_ctx", o.n_ctx},
           {"stride", o.stride},
           {"methods", settings["methods"]},
           {"results", results}};
  json_fields::write_json_file(o.common.output, out, 1);
}

struct SpeedOptions {
  CommonOptions common;
  ThroughputConfig throughput;
};

void run_eval_speed(SpeedOptions o) {
  const std::vector<EvalMethod> methods = eval_methods(o.common);
  o.throughput.n_threads = thread_count(o.common.n_threads);
  o.throughput.kv_type = parse_kv_type(o.common.kv_type);
  o.throughput.methods.clear();
  for (const EvalMethod& m : methods) o.throughput.methods.push_back(m.attention);
  const Model model = load_model(o.common);
  for (int64_t depth : o.throughput.depths) {
    if (depth < 0 ||
        depth + std::max(o.throughput.n_prompt, o.throughput.n_gen) > model.config().n_ctx_train) {
      fail("--lengths: {} is beyond the model's context of {} tokens", depth,
           model.config().n_ctx_train);
    }
  }
  RetrievalSettings described;
  describe_methods(model, methods, std::max<int64_t>(o.throughput.depths.front(), 16), described);
  const auto results = measure_throughput(
      model, o.throughput, [](const std::string& line) { spdlog::info("{}", line); });
  fmt::print("| {:<34} | {:>7} | {:>6} | {:>5} | {:>10} | {:>10} |\n", "method", "test", "depth",
             "batch", "t/s", "KV MiB");
  fmt::print("|{:-<36}|{:-<9}|{:-<8}|{:-<7}|{:-<12}|{:-<12}|\n", "", "", "", "", "", "");
  for (const ThroughputResult& r : results) {
    fmt::print("| {:<34} | {:>7} | {:>6} | {:>5} | {:>10.2f} | {:>10.3f} |\n", r.method, r.test,
               r.depth, r.batch, r.tokens_per_second,
               static_cast<double>(r.kv_cache_bytes) / (1024.0 * 1024.0));
  }
  if (o.common.output.empty()) return;
  json out{{"kind", "speed"},
           {"moa_version", kMoaVersion},
           {"model", o.common.model_path},
           {"model_hash", model.file().metadata_hash()},
           {"threads", o.throughput.n_threads},
           {"kv_type", kv_type_name(o.throughput.kv_type)},
           {"seed", o.throughput.seed},
           {"methods", settings_json(described)["methods"]},
           {"results", throughput_rows_json(results)}};
  json_fields::write_json_file(o.common.output, out, 1);
}

}  // namespace

void register_eval(CLI::App& app) {
  CLI::App* eval = app.add_subcommand("eval", "Evaluate attention methods: retrieval, ppl, speed");
  eval->require_subcommand(1);

  auto r = std::make_shared<RetrievalOptions>();
  CLI::App* ret = eval->add_subcommand(
      "retrieval", "Retrieval accuracy by length and needle depth (lines, passkey, kv)");
  add_common(*ret, r->common);
  ret->add_option("--task", r->task, "lines, passkey or kv")->capture_default_str();
  ret->add_option("--lengths", r->lengths, "Prompt lengths in model tokens, e.g. 512,1024")
      ->delimiter(',');
  ret->add_option("-n", r->n, "Cases per length (depths spread evenly)")->capture_default_str();
  ret->add_option("--cases", r->cases_file,
                  "JSONL cases (LongChat's {prompt, expected_number, num_lines} or "
                  "{prompt, expected, ...}) instead of generated ones");
  ret->add_option("--answer-prefix", r->answer_prefix, "Text appended raw after each prompt");
  ret->add_option("--answer-tokens", r->answer_tokens, "Greedy answer budget (stops at newline)")
      ->capture_default_str();
  add_seed_option(*ret, r->seed, "Seed of the generated cases")->capture_default_str();
  ret->add_option("--threshold", r->threshold, "Accuracy defining the effective context length")
      ->capture_default_str();
  ret->callback([r] { run_eval_retrieval(*r); });

  auto p = std::make_shared<PplOptions>();
  CLI::App* ppl = eval->add_subcommand(
      "ppl", "Perplexity with llama-perplexity's windowing (n_ctx chunks, second half scored)");
  add_common(*ppl, p->common);
  ppl->add_option("-f,--file", p->text_file, "Text file")->required();
  ppl->add_option("-c,--ctx", p->n_ctx, "Chunk size n_ctx (llama-perplexity -c)")
      ->capture_default_str();
  ppl->add_option("--stride,--ppl-stride", p->stride,
                  "Overlapping windows of n_ctx advancing by S, the last S tokens of each scored "
                  "(llama-perplexity --ppl-stride); 0 = chunks, second half scored")
      ->capture_default_str();
  ppl->callback([p] { run_eval_ppl(*p); });

  auto s = std::make_shared<SpeedOptions>();
  s->throughput.n_prompt = 128;
  s->throughput.n_gen = 32;
  s->throughput.repeats = 3;
  CLI::App* speed = eval->add_subcommand(
      "speed", "Decode tok/s, prefill latency and KV bytes per method (as moa bench)");
  add_common(*speed, s->common);
  speed->add_option("--lengths", s->throughput.depths, "Cache depths, e.g. 0,1024,4096")
      ->delimiter(',');
  speed->add_option("-b,--batch", s->throughput.batches, "Decode batch sizes, e.g. 1,4")
      ->delimiter(',');
  speed->add_option("-p,--n-prompt", s->throughput.n_prompt, "Prefill test tokens (0 = skip)")
      ->capture_default_str();
  speed->add_option("-n,--n-gen", s->throughput.n_gen, "Decode test tokens (0 = skip)")
      ->capture_default_str();
  speed->add_option("-r,--repetitions", s->throughput.repeats, "Repeats per test (median)")
      ->capture_default_str();
  speed->callback([s] { run_eval_speed(*s); });
}

}  // namespace moa::cli
