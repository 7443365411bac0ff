// `moa generate`: a thin CLI over engine/generate.h. Loads a model, formats the prompt (raw or a
// chat template), builds the method's cache, and streams the generated text to stdout as soon
// as it is complete UTF-8 and cannot be part of a stop string. Every method's KV cache is sized for
// the same N (-c, else prompt + -n), and the bytes it held, beside a dense cache's at that N, and
// the speeds go to stderr at the end.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "engine/chat_template.h"
#include "engine/forward.h"
#include "engine/generate.h"
#include "engine/sampler.h"
#include "kv/attention_method.h"
#include "kv/kv_cache.h"
#include "kv/static_kv_cache.h"
#include "util/error.h"
#include "util/input_error.h"

namespace moa::cli {

namespace {

constexpr int64_t kDefaultContext = 4096;

struct GenerateOptions {
  std::string model_path;
  std::string prompt;
  std::string prompt_file;
  int n_predict = 128;
  int n_threads = 0;
  bool map_model = false;  // --mmap
  int64_t n_ctx = 0;
  SamplingParams sampling;
  uint64_t seed = 0;
  bool seed_given = false;  // --seed; otherwise a random one
  std::vector<std::string> stops;
  std::string chat_template = "raw";
  std::string system;
  std::string kv_type = "f16";
  std::string method = "dense";  // --method, parsed into attention.kind
  AttentionMethod attention;
};

struct Timing {
  int64_t tokens = 0;
  double seconds = 0.0;
  std::string line(const char* what) const {
    const double rate = seconds > 0.0 ? static_cast<double>(tokens) / seconds : 0.0;
    return fmt::format("{}: {} tokens in {:.3f} s ({:.2f} tok/s)", what, tokens, seconds, rate);
  }
};

std::string prompt_text(const GenerateOptions& options) {
  if (!options.prompt.empty() && !options.prompt_file.empty()) {
    fail("-p and -f: give the prompt one way, not both");
  }
  if (!options.prompt_file.empty()) return read_text_file(options.prompt_file);
  if (!options.prompt.empty()) return options.prompt;
  return read_stdin();
}

void check_options(const GenerateOptions& options) {
  if (options.n_predict <= 0) fail("-n: {} is not a positive number of tokens", options.n_predict);
  thread_count(options.n_threads);
  if (options.n_ctx < 0) fail("-c: {} is not a valid context size", options.n_ctx);
  validate_sampling(options.sampling);
}

// Positions past the model's context_length are outside what its RoPE was trained for, and the
// bound keeps every cache size far from overflowing.
int64_t context_size(const GenerateOptions& options, const ModelConfig& config) {
  if (options.n_ctx > config.n_ctx_train) {
    fail("-c: {} exceeds the model's context length of {} tokens", options.n_ctx,
         config.n_ctx_train);
  }
  return options.n_ctx > 0 ? options.n_ctx : std::min(config.n_ctx_train, kDefaultContext);
}

// N, the length every method's cache is sized for: -c if given, else prompt + -n (capped by
// the default context), so dense and sparse caches compare at the same N.
int64_t planned_length(const GenerateOptions& options, int64_t n_ctx, size_t n_prompt) {
  if (options.n_ctx > 0) return options.n_ctx;
  return std::min<int64_t>(n_ctx, static_cast<int64_t>(n_prompt) + options.n_predict);
}

// 1234567 -> "1,234,567".
std::string grouped(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// "kv cache: B (P% of dense D at N = n)": every byte the cache held, beside the dense cache's.
std::string kv_cache_line(const AttentionCache& cache, uint64_t dense_bytes, bool dense) {
  const int64_t n = cache.n_ctx();
  if (dense) return fmt::format("kv cache: {} B (dense at N = {})", grouped(cache.bytes()), n);
  return fmt::format("kv cache: {} B ({:.1f}% of dense {} B at N = {})", grouped(cache.bytes()),
                     100.0 * static_cast<double>(cache.bytes()) / static_cast<double>(dense_bytes),
                     grouped(dense_bytes), n);
}

std::vector<TokenId> tokenize_prompt(const Model& model, const GenerateOptions& options,
                                     const std::string& text, int64_t n_ctx) {
  if (text.empty()) fail("the prompt is empty (give text with -p, -f or on stdin)");
  const bool chat = options.chat_template != "raw";
  const std::string formatted = apply_chat_template(options.chat_template, options.system, text);
  std::vector<TokenId> ids = model.tokenizer().encode(formatted, true, chat);
  if (ids.empty()) fail("the prompt tokenizes to no tokens");
  if (static_cast<int64_t>(ids.size()) >= n_ctx) {
    fail("the prompt has {} tokens but the context holds {} (raise -c or shorten the prompt)",
         ids.size(), n_ctx);
  }
  return ids;
}

void emit(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void run_generate(GenerateOptions options) {
  check_options(options);
  const std::string text = prompt_text(options);
  const int threads = thread_count(options.n_threads);
  options.sampling.seed = options.seed_given ? options.seed : std::random_device{}();
  const Model model = Model::load(options.model_path, model_file_load(options.map_model));
  const int64_t n_ctx = context_size(options, model.config());
  std::vector<TokenId> history = tokenize_prompt(model, options, text, n_ctx);
  const int64_t n_planned = planned_length(options, n_ctx, history.size());
  options.attention.kind = parse_attention_kind(options.method);
  check_attention_method(options.attention, n_planned);
  const std::optional<SparsePlan> plan = method_plan(
      options.attention, identity_of(model.config(), model.file().metadata_hash()), n_planned);
  if (plan && plan->sinks > n_ctx) {
    fail("{}: sinks: {} sink tokens exceed the context of {} tokens (-c)",
         options.attention.plan_path, plan->sinks, n_ctx);
  }
  const kernels::KvType kv_type = parse_kv_type(options.kv_type);
  // A ring cache's chunk buffer only has to take this prompt's chunks (decode is in place).
  const int64_t chunk = std::min<int64_t>(kDefaultRingChunk, static_cast<int64_t>(history.size()));
  std::unique_ptr<AttentionCache> owned_cache;
  try {
    owned_cache = make_attention_cache(kv_shape(model.config(), n_planned, 1, kv_type),
                                       options.attention, plan, chunk);
  } catch (const std::bad_alloc&) {
    fail("-c {}: not enough memory for a KV cache of {} tokens (lower -c)", n_ctx, n_planned);
  }
  AttentionCache& cache = *owned_cache;
  std::fprintf(stderr, "attention: %s, KV density %.4f at N = %lld\n",
               method_label(options.attention, n_planned).c_str(),
               method_kv_density(options.attention, plan, n_planned),
               static_cast<long long>(n_planned));

  GenerateRequest request;
  request.prompt = history;
  request.max_new_tokens = options.n_predict;
  request.sampling = options.sampling;
  request.stop_strings = options.stops;
  for (const std::string& stop : chat_template_stops(options.chat_template)) {
    request.stop_strings.push_back(stop);
  }
  const GenerateResult result = generate(
      model, cache, 0, request,
      [](std::string_view text) {
        emit(text);
        return true;
      },
      threads);
  if (result.stop == StopReason::kContextFull) {
    spdlog::warn("context of {} tokens is full; stopping (raise -c)", cache.n_ctx());
  }
  const Timing prefill_time{static_cast<int64_t>(history.size()), result.prefill_seconds};
  const Timing decode_time{result.decoded_tokens, result.decode_seconds};
  emit("\n");
  const uint64_t dense_bytes = KvCache::bytes_for(kv_shape(model.config(), n_planned, 1, kv_type));
  std::fprintf(
      stderr, "%s\n%s\n%s\n",
      kv_cache_line(cache, dense_bytes, options.attention.kind == AttentionKind::kDense).c_str(),
      prefill_time.line("prefill").c_str(), decode_time.line("decode").c_str());
}

}  // namespace

void register_generate(CLI::App& app) {
  auto options = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "generate", "Generate text from a prompt (dense, StreamingLLM, MoA or H2O attention)");
  cmd->add_option("-m,--model", options->model_path, "GGUF model file")->required();
  cmd->add_option("-p,--prompt", options->prompt, "Prompt text");
  cmd->add_option("-f,--file", options->prompt_file, "Read the prompt from a file");
  cmd->add_option("-n,--n-predict", options->n_predict, "Tokens to generate")
      ->capture_default_str();
  cmd->add_option("-t,--threads", options->n_threads,
                  fmt::format("Threads, 1 .. {} (default: all cores)", kMaxThreads));
  add_mmap_flag(*cmd, options->map_model);
  cmd->add_option("-c,--ctx-size", options->n_ctx,
                  "Context size N every KV cache is sized for, at most the model's "
                  "context_length (default: prompt + -n, at most min(context_length, 4096))");
  cmd->add_option("--temp", options->sampling.temperature, "Temperature (0 = greedy)")
      ->capture_default_str();
  cmd->add_option("--top-k", options->sampling.top_k, "Top-k (0 = off)")->capture_default_str();
  cmd->add_option("--top-p", options->sampling.top_p, "Top-p (1 = off)")->capture_default_str();
  cmd->add_option("--min-p", options->sampling.min_p, "Min-p (0 = off)")->capture_default_str();
  cmd->add_option("--repeat-penalty", options->sampling.repeat_penalty,
                  "Repetition penalty (1 = off)")
      ->capture_default_str();
  cmd->add_option("--repeat-last-n", options->sampling.repeat_last_n,
                  "Tokens of history the repetition penalty considers")
      ->capture_default_str();
  CLI::Option* seed = add_seed_option(*cmd, options->seed, "Random seed (default: random)");
  cmd->add_option("--stop", options->stops, "Stop when this text is produced (repeatable)");
  cmd->add_option("--chat-template", options->chat_template, "raw, llama2, llama3 or chatml")
      ->capture_default_str();
  cmd->add_option("--system", options->system, "System message (with a chat template)");
  cmd->add_option("--kv-type", options->kv_type, "KV cache storage: f32, f16 or q8_0")
      ->capture_default_str();
  cmd->add_option("--plan", options->attention.plan_path, "Sparse-attention plan (MoA) to run");
  CLI::Option* method =
      cmd->add_option("--method", options->method, "Attention: dense, streaming, moa or h2o")
          ->capture_default_str();
  cmd->add_option("--density", options->attention.density,
                  "streaming, h2o: KV density (0, 1], sinks included, at N (-c, else prompt + -n)")
      ->capture_default_str();
  cmd->add_option("--sinks", options->attention.sinks,
                  "streaming: sink tokens G (counted in --density)")
      ->capture_default_str();
  cmd->callback([options, seed, method] {
    options->seed_given = seed->count() > 0;
    if (!options->attention.plan_path.empty() && options->method == "dense") {
      // --plan alone runs it; an explicit --method dense beside it is a contradiction.
      if (method->count() > 0) {
        fail_input("method", "dense runs no plan (give --method moa with --plan, or no --plan)");
      }
      options->method = "moa";
    }
    run_generate(*options);
  });
}

}  // namespace moa::cli
