// Perplexity with llama-perplexity's windowing (see perplexity.h).
#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>

#include "engine/generate.h"
#include "kv/static_kv_cache.h"
#include "util/error.h"

namespace moa {

std::vector<PerplexityChunk> perplexity_chunks(int64_t n_tokens, int64_t n_ctx) {
  if (n_ctx < 4) fail("perplexity context {}: expected at least 4 tokens", n_ctx);
  if (n_tokens < 2 * n_ctx) {
    fail("perplexity: the text has {} tokens; a context of {} needs at least {} (2 x context)",
         n_tokens, n_ctx, 2 * n_ctx);
  }
  std::vector<PerplexityChunk> chunks;
  const int64_t first = n_ctx / 2;
  for (int64_t i = 0; i < n_tokens / n_ctx; ++i) {
    chunks.push_back({i * n_ctx, first, n_ctx - 1 - first});
  }
  return chunks;
}

double token_nll(std::span<const float> logits, TokenId target) {
  const float top = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - top);
  return std::log(sum) - (static_cast<double>(logits[static_cast<size_t>(target)]) - top);
}

PerplexityResult measure_perplexity(const Model& model, const EvalMethod& method,
                                    std::span<const TokenId> tokens, int64_t n_ctx,
                                    const RetrievalConfig& config,
                                    const std::function<void(int64_t chunk)>& on_chunk) {
  if (n_ctx > model.config().n_ctx_train) {
    fail("perplexity context {}: the model's context is {} tokens", n_ctx,
         model.config().n_ctx_train);
  }
  const std::vector<PerplexityChunk> chunks =
      perplexity_chunks(static_cast<int64_t>(tokens.size()), n_ctx);
  check_attention_method(method.attention, n_ctx);
  const std::optional<SparsePlan> plan = method_plan(
      method.attention, identity_of(model.config(), model.file().metadata_hash()), n_ctx);
  const TokenId bos = model.tokenizer().bos();
  const bool add_bos = model.tokenizer().add_bos() && bos >= 0;
  PerplexityResult result;
  result.n_ctx = n_ctx;
  result.kv_density = method_kv_density(method.attention, plan, n_ctx);
  double nll = 0.0, nll2 = 0.0;
  for (const PerplexityChunk& chunk : chunks) {
    std::vector<TokenId> ids(tokens.begin() + chunk.start, tokens.begin() + chunk.start + n_ctx);
    if (add_bos) ids[0] = bos;
    const auto cache = make_attention_cache(kv_shape(model.config(), n_ctx, 1, config.kv_type),
                                            method.attention, plan, kDefaultRingChunk);
    const int64_t step = prefill_chunk_size(*cache);
    for (int64_t begin = 0; begin < n_ctx; begin += step) {
      const int64_t n = std::min(step, n_ctx - begin);
      const Logits logits = forward_tokens(model, *cache, 0, std::span(ids).subspan(begin, n),
                                           LogitsMode::kAll, config.n_threads);
      for (int64_t r = 0; r < n; ++r) {
        const int64_t pos = begin + r;
        if (pos < chunk.first || pos > n_ctx - 2) continue;
        const double v = token_nll(logits.row(r), ids[pos + 1]);
        nll += v;
        nll2 += v * v;
        ++result.n_scored;
      }
    }
    ++result.n_chunks;
    result.running_ppl.push_back(std::exp(nll / static_cast<double>(result.n_scored)));
    if (on_chunk) on_chunk(result.n_chunks);
  }
  const double count = static_cast<double>(result.n_scored);
  result.mean_nll = nll / count;
  result.ppl = std::exp(result.mean_nll);
  const double var = nll2 / count - result.mean_nll * result.mean_nll;
  result.ppl_error = var > 0.0 && count > 1 ? std::sqrt(var / (count - 1.0)) * result.ppl : 0.0;
  return result;
}

}  // namespace moa
