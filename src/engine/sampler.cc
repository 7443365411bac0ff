// Token sampling (see sampler.h). Candidates are filtered the way llama.cpp's default chain does
// (top-k, top-p, min-p on temperature-1 probabilities, then temperature), so the same settings
// keep the same meaning; the draw uses a seeded mt19937_64 so runs are reproducible.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>
#include <utility>

#include "util/error.h"
#include "util/input_error.h"

namespace moa {

namespace {

struct Candidate {
  TokenId id;
  float logit;
};

// Softmax probabilities of candidates sorted by descending logit, at temperature `temp`.
std::vector<double> softmax(const std::vector<Candidate>& sorted, double temp) {
  std::vector<double> probs(sorted.size());
  double sum = 0.0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    probs[i] = std::exp((static_cast<double>(sorted[i].logit) - sorted[0].logit) / temp);
    sum += probs[i];
  }
  for (double& p : probs) p /= sum;
  return probs;
}

void keep_top_p(std::vector<Candidate>& sorted, float top_p) {
  if (top_p >= 1.0f) return;
  const std::vector<double> probs = softmax(sorted, 1.0);
  double cumulative = 0.0;
  size_t keep = sorted.size();
  for (size_t i = 0; i < sorted.size(); ++i) {
    cumulative += probs[i];
    if (cumulative >= top_p) {
      keep = i + 1;
      break;
    }
  }
  sorted.resize(std::max<size_t>(1, keep));
}

void keep_min_p(std::vector<Candidate>& sorted, float min_p) {
  if (min_p <= 0.0f) return;
  // p_i >= min_p * p_max  <=>  logit_i >= logit_max + ln(min_p)
  const double threshold = sorted[0].logit + std::log(static_cast<double>(min_p));
  size_t keep = 1;
  while (keep < sorted.size() && sorted[keep].logit >= threshold) ++keep;
  sorted.resize(keep);
}

}  // namespace

SamplingParams greedy_sampling() {
  SamplingParams p;
  p.temperature = 0.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  return p;
}

void validate_sampling(const SamplingParams& p) {
  if (!std::isfinite(p.temperature) || p.temperature < 0.0f) {
    fail_input("temperature", "{} is not a valid temperature (expected a number >= 0; 0 = greedy)",
               p.temperature);
  }
  if (p.top_k < 0) fail_input("top-k", "{} is negative (expected >= 0; 0 = off)", p.top_k);
  if (!(p.top_p >= 0.0f && p.top_p <= 1.0f)) {
    fail_input("top-p", "{} is outside [0, 1] (1 = off)", p.top_p);
  }
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) {
    fail_input("min-p", "{} is outside [0, 1] (0 = off)", p.min_p);
  }
  if (!std::isfinite(p.repeat_penalty) || p.repeat_penalty <= 0.0f) {
    fail_input("repeat penalty", "{} is not positive (1 = off)", p.repeat_penalty);
  }
  if (p.repeat_last_n < 0)
    fail_input("repeat window", "{} is negative (expected >= 0 tokens)", p.repeat_last_n);
}

TokenId argmax(std::span<const float> logits) {
  if (logits.empty()) fail("sampler: no logits");
  return static_cast<TokenId>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

void apply_repeat_penalty(std::span<float> logits, std::span<const TokenId> history, int last_n,
                          float penalty) {
  if (penalty == 1.0f || last_n == 0) return;
  const size_t n = std::min(history.size(), static_cast<size_t>(last_n));
  std::unordered_set<TokenId> seen(history.end() - static_cast<std::ptrdiff_t>(n), history.end());
  for (TokenId id : seen) {
    if (id < 0 || static_cast<size_t>(id) >= logits.size()) continue;
    float& logit = logits[static_cast<size_t>(id)];
    logit = logit > 0.0f ? logit / penalty : logit * penalty;
  }
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
  validate_sampling(params);
}

TokenId Sampler::sample(std::span<const float> logits, std::span<const TokenId> history) {
  std::vector<float> adjusted(logits.begin(), logits.end());
  apply_repeat_penalty(adjusted, history, params_.repeat_last_n, params_.repeat_penalty);
  if (params_.temperature <= 0.0f) return argmax(adjusted);

  std::vector<Candidate> sorted(adjusted.size());
  for (size_t i = 0; i < adjusted.size(); ++i) sorted[i] = {static_cast<TokenId>(i), adjusted[i]};
  auto by_logit = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  const size_t k = params_.top_k > 0 ? std::min(sorted.size(), static_cast<size_t>(params_.top_k))
                                     : sorted.size();
  std::partial_sort(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(k), sorted.end(),
                    by_logit);
  sorted.resize(k);
  keep_top_p(sorted, params_.top_p);
  keep_min_p(sorted, params_.min_p);

  const std::vector<double> probs = softmax(sorted, params_.temperature);
  std::discrete_distribution<size_t> draw(probs.begin(), probs.end());
  return sorted[draw(rng_)].id;
}

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

std::string StopMatcher::push(std::string_view text) {
  if (stopped_) return {};
  pending_ += text;
  size_t first_match = std::string::npos;
  for (const std::string& stop : stops_) first_match = std::min(first_match, pending_.find(stop));
  if (first_match != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, first_match);
    pending_.clear();
    return out;
  }
  // Hold back the longest tail of pending_ that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& stop : stops_) {
    for (size_t len = std::min(stop.size() - 1, pending_.size()); len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, stop, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopMatcher::flush() {
  std::string out = std::move(pending_);
  pending_.clear();
  return out;
}

}  // namespace moa
