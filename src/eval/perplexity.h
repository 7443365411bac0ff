// Perplexity with llama.cpp's `llama-perplexity` windowing (tools/perplexity/perplexity.cpp,
// perplexity()): the text is tokenized with BOS, cut into n_chunk = n_tokens / n_ctx
// non-overlapping chunks of n_ctx tokens (the tail is dropped; at least 2 chunks' worth of
// tokens is required), the first token of every chunk is replaced by BOS when the vocabulary
// adds one, each chunk starts from an empty cache, and only the logits at positions
// first = n_ctx / 2 .. n_ctx - 2 are scored (n_ctx - 1 - n_ctx / 2 tokens per chunk).
// PPL = exp(mean NLL); its error is llama.cpp's sqrt(var(NLL) / (count - 1)) * PPL.
// With a stride S (llama-perplexity --ppl-stride, its perplexity_v2()): windows of n_ctx tokens
// start at i * S for i < ceil((n_tokens - n_ctx) / S), each is decoded as the text has it (v2
// swaps BOS in only after the decode, so only window 0 starts with BOS, from the tokenizer), and
// the logits at n_ctx - S - 1 .. n_ctx - 2 are scored: S tokens, exactly those no earlier window
// scored.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "eval/retrieval.h"

namespace moa {

struct PerplexityChunk {
  int64_t start = 0;  // index of the chunk's first token in the text's tokens
  int64_t first = 0;  // first scored logit position inside the chunk
  int64_t n_scored = 0;
  bool bos_first = true;  // the chunk's first token is replaced by BOS (when the vocab adds one)
};

// The chunks llama-perplexity scores for n_tokens tokens at context n_ctx; stride 0 is its
// default windowing, stride S > 0 its --ppl-stride S. Throws when n_ctx < 4, n_tokens <
// 2 * n_ctx (llama.cpp refuses that too) or the stride is not in 1 .. n_ctx - 1 (llama.cpp
// would read logits before the window).
std::vector<PerplexityChunk> perplexity_chunks(int64_t n_tokens, int64_t n_ctx, int64_t stride = 0);

struct PerplexityResult {
  int64_t n_ctx = 0;
  int64_t stride = 0;  // 0: llama-perplexity's default windowing
  int64_t n_chunks = 0;
  int64_t n_scored = 0;
  double mean_nll = 0.0;
  double ppl = 0.0;
  double ppl_error = 0.0;
  std::vector<double> running_ppl;  // after each chunk, as llama.cpp prints [1]x,[2]y,...
  double kv_density = 1.0;          // the method's at N = n_ctx
};

// Scores `tokens` (BOS first, as tokenized for llama-perplexity) with the method's cache sized
// for n_ctx, in the windows of perplexity_chunks(n_tokens, n_ctx, stride). `on_chunk` (may be
// empty) is called after each chunk.
PerplexityResult measure_perplexity(const Model& model, const EvalMethod& method,
                                    std::span<const TokenId> tokens, int64_t n_ctx, int64_t stride,
                                    const RetrievalConfig& config,
                                    const std::function<void(int64_t chunk)>& on_chunk);

// -log softmax(logits)[target], in double precision.
double token_nll(std::span<const float> logits, TokenId target);

}  // namespace moa
