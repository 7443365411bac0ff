// `moa generate`: loads a model, formats the prompt (raw or a chat template), prefills it in
// chunks, then samples and decodes one token at a time, streaming text to stdout as soon as it
// is complete UTF-8 and cannot be part of a stop string. Speeds go to stderr at the end.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "kv/attention_method.h"
#include "kv/kv_cache.h"
#include "kv/static_kv_cache.h"
#include "model/chat_template.h"
#include "model/forward.h"
#include "model/sampler.h"
#include "util/error.h"

namespace moa::cli {

namespace {

constexpr int64_t kPrefillChunk = 512;  // bounds activation memory for long prompts
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
  int64_t seed = -1;
  std::vector<std::string> stops;
  std::string chat_template = "raw";
  std::string system;
  std::string kv_type = "f16";
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

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

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

Logits prefill(const Model& model, AttentionCache& cache, const std::vector<TokenId>& ids,
               int threads) {
  Logits logits;
  const auto chunk = static_cast<size_t>(std::min(kPrefillChunk, cache.max_chunk()));
  for (size_t start = 0; start < ids.size(); start += chunk) {
    const size_t n = std::min(ids.size() - start, chunk);
    logits = forward_tokens(model, cache, 0, std::span(ids).subspan(start, n), LogitsMode::kLast,
                            threads);
  }
  return logits;
}

std::unique_ptr<AttentionCache> make_cache(const ModelConfig& config,
                                           const GenerateOptions& options,
                                           const std::optional<SparsePlan>& plan, int64_t n_ctx,
                                           int64_t n_planned) {
  const int64_t n_cached = options.attention.method == "dense" ? n_ctx : n_planned;
  try {
    return make_attention_cache(config, options.attention, plan, n_cached, 1,
                                parse_kv_type(options.kv_type), kDefaultRingChunk);
  } catch (const std::bad_alloc&) {
    fail("-c {}: not enough memory for a KV cache of {} tokens (lower -c)", n_ctx, n_cached);
  }
}

void emit(const std::string& text) {
  if (text.empty()) return;
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void run_generate(GenerateOptions options) {
  check_options(options);
  const std::string text = prompt_text(options);
  const int threads = thread_count(options.n_threads);
  options.sampling.seed =
      options.seed >= 0 ? static_cast<uint64_t>(options.seed) : std::random_device{}();
  Sampler sampler(options.sampling);
  const Model model = Model::load(options.model_path, model_file_load(options.map_model));
  const int64_t n_ctx = context_size(options, model.config());
  std::vector<TokenId> history = tokenize_prompt(model, options, text, n_ctx);
  // A sparse cache (plan or h2o) is planned for exactly the tokens this run can reach.
  const int64_t n_planned =
      std::min<int64_t>(n_ctx, static_cast<int64_t>(history.size()) + options.n_predict);
  check_attention_method(options.attention, n_ctx);
  const std::optional<SparsePlan> plan = method_plan(
      options.attention, identity_of(model.config(), model.file().metadata_hash()), n_planned);
  if (plan && plan->sinks > n_ctx) {
    fail("{}: sinks: {} sink tokens exceed the context of {} tokens (-c)",
         options.attention.plan_path, plan->sinks, n_ctx);
  }
  const std::unique_ptr<AttentionCache> owned_cache =
      make_cache(model.config(), options, plan, n_ctx, n_planned);
  AttentionCache& cache = *owned_cache;
  std::fprintf(stderr, "attention: %s, KV cache %llu bytes (%.2f MiB)\n",
               method_label(options.attention, plan).c_str(),
               static_cast<unsigned long long>(cache.bytes()),
               static_cast<double>(cache.bytes()) / (1024.0 * 1024.0));

  Timing prefill_time{static_cast<int64_t>(history.size()), 0.0};
  auto start = Clock::now();
  Logits logits = prefill(model, cache, history, threads);
  prefill_time.seconds = seconds_since(start);

  std::vector<std::string> stops = options.stops;
  for (const std::string& s : chat_template_stops(options.chat_template)) stops.push_back(s);
  StopMatcher stop(stops);
  StreamingDecoder decoder(model.tokenizer());
  Timing decode_time;
  for (int i = 0; i < options.n_predict; ++i) {
    const TokenId next = sampler.sample(logits.row(0), history);
    if (model.tokenizer().is_eog(next)) break;
    history.push_back(next);
    emit(stop.push(decoder.push(next)));
    if (stop.stopped() || i + 1 == options.n_predict) break;
    if (cache.length(0) >= cache.n_ctx()) {
      spdlog::warn("context of {} tokens is full; stopping (raise -c)", cache.n_ctx());
      break;
    }
    start = Clock::now();
    logits =
        forward_tokens(model, cache, 0, std::span(&history.back(), 1), LogitsMode::kLast, threads);
    decode_time.seconds += seconds_since(start);
    ++decode_time.tokens;
  }
  if (!stop.stopped()) {
    emit(stop.push(decoder.flush()));
    emit(stop.flush());
  }
  emit("\n");
  std::fprintf(stderr, "%s\n%s\n", prefill_time.line("prefill").c_str(),
               decode_time.line("decode").c_str());
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
  cmd->add_option(
      "-c,--ctx-size", options->n_ctx,
      "Context size in tokens, at most the model's context_length (default: min(that, 4096))");
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
  cmd->add_option("--seed", options->seed, "Random seed (default: random)");
  cmd->add_option("--stop", options->stops, "Stop when this text is produced (repeatable)");
  cmd->add_option("--chat-template", options->chat_template, "raw, llama2, llama3 or chatml")
      ->capture_default_str();
  cmd->add_option("--system", options->system, "System message (with a chat template)");
  cmd->add_option("--kv-type", options->kv_type, "KV cache storage: f32 or f16")
      ->capture_default_str();
  cmd->add_option("--plan", options->attention.plan_path, "Sparse-attention plan (MoA) to run");
  cmd->add_option("--method", options->attention.method, "Attention: dense, streaming, moa or h2o")
      ->capture_default_str();
  cmd->add_option("--density", options->attention.density,
                  "streaming, h2o: KV density (0, 1] at prompt + n-predict tokens")
      ->capture_default_str();
  cmd->add_option("--sinks", options->attention.sinks, "streaming: sink tokens G")
      ->capture_default_str();
  cmd->callback([options] {
    if (!options->attention.plan_path.empty() && options->attention.method == "dense") {
      options->attention.method = "moa";
    }
    run_generate(*options);
  });
}

}  // namespace moa::cli
