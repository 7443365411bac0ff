// Generation loop (see generate.h): prefill in chunks, then sample -> stream -> decode one token
// at a time. The loop checks for a full context before each decode step rather than failing
// inside the forward pass, so a long generation ends cleanly with StopReason::kContextFull.
#include "engine/generate.h"

#include <algorithm>
#include <chrono>

#include "util/error.h"

namespace moa {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int64_t prefill_chunk_size(const AttentionCache& cache) {
  return std::max<int64_t>(1, std::min(kPrefillChunk, cache.max_chunk()));
}

Logits prefill(const Model& model, AttentionCache& cache, int seq, std::span<const TokenId> tokens,
               int n_threads) {
  if (tokens.empty()) fail("prefill: no tokens to run");
  const auto chunk = static_cast<size_t>(prefill_chunk_size(cache));
  Logits logits;
  for (size_t start = 0; start < tokens.size(); start += chunk) {
    const size_t n = std::min(tokens.size() - start, chunk);
    logits =
        forward_tokens(model, cache, seq, tokens.subspan(start, n), LogitsMode::kLast, n_threads);
  }
  return logits;
}

std::string_view stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::kTokenBudget:
      return "length";
    case StopReason::kEndOfGeneration:
      return "eog";
    case StopReason::kStopString:
      return "stop";
    case StopReason::kContextFull:
      return "context";
    case StopReason::kCaller:
      return "caller";
  }
  return "?";
}

GenerateResult generate(const Model& model, AttentionCache& cache, int seq,
                        const GenerateRequest& request, const TextCallback& on_text,
                        int n_threads) {
  if (request.prompt.empty()) fail("generate: the prompt has no tokens");
  if (request.max_new_tokens <= 0) {
    fail("generate: {} new tokens requested; expected a positive number", request.max_new_tokens);
  }
  if (cache.length(seq) != 0) fail("generate: sequence {} is not empty", seq);
  cache.check_room(seq, static_cast<int64_t>(request.prompt.size()));

  GenerateResult result;
  std::vector<TokenId> history(request.prompt.begin(), request.prompt.end());
  Sampler sampler(request.sampling);
  std::vector<std::string> stops = request.stop_strings;
  if (request.stop_at_newline) stops.emplace_back("\n");
  StopMatcher stop(stops);
  StreamingDecoder decoder(model.tokenizer());
  bool caller_stopped = false;
  auto emit = [&](const std::string& text) {
    if (text.empty() || caller_stopped) return;
    result.text += text;
    if (on_text && !on_text(text)) caller_stopped = true;
  };

  auto start = Clock::now();
  Logits logits = prefill(model, cache, seq, request.prompt, n_threads);
  result.prefill_seconds = seconds_since(start);
  for (;;) {
    const TokenId next = sampler.sample(logits.row(0), history);
    if (model.tokenizer().is_eog(next)) {
      result.stop = StopReason::kEndOfGeneration;
      break;
    }
    history.push_back(next);
    result.tokens.push_back(next);
    emit(stop.push(decoder.push(next)));
    if (stop.stopped()) {
      result.stop = StopReason::kStopString;
      break;
    }
    if (caller_stopped) {
      result.stop = StopReason::kCaller;
      break;
    }
    if (static_cast<int64_t>(result.tokens.size()) >= request.max_new_tokens) break;
    if (cache.length(seq) >= cache.n_ctx()) {
      result.stop = StopReason::kContextFull;
      break;
    }
    start = Clock::now();
    logits = forward_tokens(model, cache, seq, std::span(&history.back(), 1), LogitsMode::kLast,
                            n_threads);
    result.decode_seconds += seconds_since(start);
    ++result.decoded_tokens;
  }
  if (!stop.stopped()) {
    emit(stop.push(decoder.flush()));
    emit(stop.flush());
  }
  return result;
}

}  // namespace moa
