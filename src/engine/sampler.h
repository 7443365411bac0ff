// Picking the next token from logits, with llama.cpp's semantics and order: repetition penalty,
// then (unless greedy) top-k, top-p, min-p, temperature, and a seeded draw. Also stop strings,
// which hold back streamed text that might still become a stop string.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace moa {

struct SamplingParams {
  float temperature = 0.8f;     // <= 0: greedy (argmax)
  int top_k = 40;               // <= 0: off
  float top_p = 0.95f;          // 1: off
  float min_p = 0.05f;          // 0: off
  float repeat_penalty = 1.0f;  // 1: off
  int repeat_last_n = 64;       // tokens of history the penalty looks at
  uint64_t seed = 0;
};

// Greedy decoding: temperature 0 (argmax), every other stage off.
SamplingParams greedy_sampling();

// Throws moa::Error naming the flag when a value is out of range (e.g. top_p outside [0, 1]).
void validate_sampling(const SamplingParams& params);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);  // validates
  // `history` is every token seen so far (prompt and generated), for the repetition penalty.
  TokenId sample(std::span<const float> logits, std::span<const TokenId> history);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

// Index of the largest logit (lowest index on ties).
TokenId argmax(std::span<const float> logits);

// llama.cpp's repetition penalty: each distinct token among the last `last_n` of history has its
// logit divided by `penalty` when positive, multiplied when negative.
void apply_repeat_penalty(std::span<float> logits, std::span<const TokenId> history, int last_n,
                          float penalty);

// Watches streamed text for stop strings. push() returns the text that can no longer be part of
// a stop string; once one matched, stopped() is true and the stop string is not emitted.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);
  std::string push(std::string_view text);
  std::string flush();  // remaining held-back text (when generation ends for another reason)
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace moa
