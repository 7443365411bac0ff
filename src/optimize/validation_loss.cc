// Answer cross-entropy of a plan with the sparse engine (see validation_loss.h).
#include "optimize/validation_loss.h"

#include <algorithm>
#include <cmath>

#include "engine/generate.h"
#include "kv/static_kv_cache.h"
#include "util/error.h"

namespace moa {
namespace {

// -log softmax(row)[target], in double so long vocabularies sum accurately.
double negative_log_likelihood(std::span<const float> row, TokenId target) {
  const float top = *std::max_element(row.begin(), row.end());
  double sum = 0.0;
  for (float v : row) sum += std::exp(static_cast<double>(v - top));
  return std::log(sum) - static_cast<double>(row[static_cast<size_t>(target)] - top);
}

}  // namespace

double plan_answer_loss(const Model& model, const SparsePlan& plan,
                        const std::vector<const CalibrationSample*>& samples, int64_t length,
                        int n_threads) {
  if (samples.empty()) fail("validation: no calibration samples at length {}", length);
  const KvShape shape = kv_shape(model.config(), length, 1, kernels::KvType::kF16);
  double total = 0.0;
  for (const CalibrationSample* s : samples) {
    const auto tokens = static_cast<int64_t>(s->prompt.size() + s->answer.size());
    if (s->answer.empty() || s->prompt.empty() || tokens > length) {
      fail(
          "validation: calibration sample {} of length {} has {} tokens and {} answer tokens; "
          "expected a prompt and an answer within {} tokens",
          s->index, s->length, tokens, s->answer.size(), length);
    }
    StaticKvCache cache(shape, plan);
    const Logits first = prefill(model, cache, 0, s->prompt, n_threads);
    double nll = negative_log_likelihood(first.row(0), s->answer[0]);
    // Teacher forcing: answer token t predicts token t + 1.
    const std::span<const TokenId> answer(s->answer);
    const auto chunk = static_cast<size_t>(prefill_chunk_size(cache));
    for (size_t start = 0; start + 1 < answer.size(); start += chunk) {
      const size_t n = std::min(answer.size() - 1 - start, chunk);
      const Logits rows =
          forward_tokens(model, cache, 0, answer.subspan(start, n), LogitsMode::kAll, n_threads);
      for (size_t t = 0; t < n; ++t)
        nll += negative_log_likelihood(rows.row(static_cast<int64_t>(t)), answer[start + t + 1]);
    }
    total += nll / static_cast<double>(answer.size());
  }
  return total / static_cast<double>(samples.size());
}

std::vector<const CalibrationSample*> samples_at(const CalibrationSet& set, int64_t length,
                                                 const std::string& file) {
  std::vector<const CalibrationSample*> out;
  for (const CalibrationSample& s : set.samples) {
    if (s.length == length) out.push_back(&s);
  }
  if (out.empty()) {
    std::string lengths;
    for (int64_t n : set.lengths) lengths += (lengths.empty() ? "" : ", ") + std::to_string(n);
    fail("{}: no calibration samples of length {} (its lengths: {})", file, length, lengths);
  }
  return out;
}

int64_t default_validation_length(const CalibrationSet& set, const std::vector<int64_t>& profiled) {
  const int64_t longest =
      profiled.empty() ? 0 : *std::max_element(profiled.begin(), profiled.end());
  int64_t best = 0;
  for (const CalibrationSample& s : set.samples) {
    if (s.length > longest) best = std::max(best, s.length);
  }
  return best;
}

}  // namespace moa
