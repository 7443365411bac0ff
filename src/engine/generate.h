// Generation as a library: prompt tokens in, sampled tokens and streamed text out through a
// callback, with the stop conditions users expect (token budget, end-of-generation token, stop
// strings, end of line, full context). One prefill chunking rule serves generate, bench,
// calibration and (later) the server, so every caller runs the prompt through the cache the same
// way.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/forward.h"
#include "engine/sampler.h"
#include "kv/attention_cache.h"

namespace moa {

inline constexpr int64_t kPrefillChunk = 512;  // bounds activation memory for long prompts

// Tokens per prefill call: kPrefillChunk, or less when the cache takes less per call.
int64_t prefill_chunk_size(const AttentionCache& cache);

// Runs `tokens` of sequence `seq` through the cache in prefill chunks; returns the logits of the
// last token.
Logits prefill(const Model& model, AttentionCache& cache, int seq, std::span<const TokenId> tokens,
               int n_threads);

enum class StopReason { kTokenBudget, kEndOfGeneration, kStopString, kContextFull, kCaller };
std::string_view stop_reason_name(StopReason reason);

struct GenerateRequest {
  std::span<const TokenId> prompt;  // placed at the start of the (empty) sequence
  int64_t max_new_tokens = 128;
  SamplingParams sampling;                // temperature 0: greedy
  std::vector<std::string> stop_strings;  // matched on the streamed text, never emitted
  bool stop_at_newline = false;           // "\n" as one more stop string
};

struct GenerateResult {
  std::vector<TokenId> tokens;  // sampled tokens, including one that completed a stop string
  std::string text;             // streamed text (stop strings removed)
  StopReason stop = StopReason::kTokenBudget;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
  int64_t decoded_tokens = 0;  // forward passes after the prefill
};

// Receives each piece of complete UTF-8 text as soon as no stop string can still claim it;
// returning false stops generation (StopReason::kCaller).
using TextCallback = std::function<bool(std::string_view text)>;

// Prefills the prompt into sequence `seq` of `cache` (which must be empty for it) and samples
// up to max_new_tokens tokens. Throws moa::Error when the prompt is empty or does not fit.
GenerateResult generate(const Model& model, AttentionCache& cache, int seq,
                        const GenerateRequest& request, const TextCallback& on_text, int n_threads);

}  // namespace moa
