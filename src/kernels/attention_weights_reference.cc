// Double-precision attention probabilities, written straight from the softmax definition (see
// attention_weights_reference.h); the visibility rule is reference::key_visible.
#include "kernels/attention_weights_reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/half.h"
#include "kernels/reference.h"

namespace moa::kernels::reference {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

double key_element(const KvView& kv, int64_t index, int64_t head_dim) {
  if (kv.type == KvType::kF32) return static_cast<const float*>(kv.k)[index];
  if (kv.type == KvType::kF16) return half_to_float(static_cast<const uint16_t*>(kv.k)[index]);
  return q8_0_kv_value(kv.k, index, head_dim);
}

// Scaled scores of one row (query qi, head h) against every key; hidden keys get -inf.
std::vector<double> row_scores(const AttentionShape& shape, const float* q, int64_t qi, int64_t h,
                               int64_t q_pos0, const KvView& kv, std::span<const BandMask> masks) {
  const int64_t g = h / (shape.n_head / shape.n_head_kv);
  const BandMask mask = masks.empty() ? BandMask{} : masks[static_cast<size_t>(g)];
  const float* qv = q + (qi * shape.n_head + h) * shape.head_dim;
  std::vector<double> s(static_cast<size_t>(kv.n_keys), kNegInf);
  for (int64_t j = 0; j < kv.n_keys; ++j) {
    if (!key_visible(mask, q_pos0 + qi, j)) continue;
    double dot = 0.0;
    for (int64_t i = 0; i < shape.head_dim; ++i) {
      dot += qv[i] * key_element(kv, g * kv.head_stride + j * shape.head_dim + i, shape.head_dim);
    }
    s[static_cast<size_t>(j)] = dot * shape.scale;
  }
  return s;
}

double log_sum_exp(const std::vector<double>& s) {
  const double m = s.empty() ? kNegInf : *std::max_element(s.begin(), s.end());
  if (m == kNegInf) return kNegInf;
  double sum = 0.0;
  for (double x : s) sum += std::exp(x - m);
  return m + std::log(sum);
}

}  // namespace

void attention_row_lse(const AttentionShape& shape, const float* q, int64_t n_query, int64_t q_pos0,
                       const KvView& kv, std::span<const BandMask> masks, double* lse) {
  for (int64_t qi = 0; qi < n_query; ++qi) {
    for (int64_t h = 0; h < shape.n_head; ++h) {
      lse[qi * shape.n_head + h] = log_sum_exp(row_scores(shape, q, qi, h, q_pos0, kv, masks));
    }
  }
}

void accumulate_attention_weights(const AttentionShape& shape, const float* q, int64_t n_query,
                                  int64_t q_pos0, const KvView& kv, std::span<const BandMask> masks,
                                  double* scores, int64_t score_stride) {
  const int64_t group = shape.n_head / shape.n_head_kv;
  for (int64_t qi = 0; qi < n_query; ++qi) {
    for (int64_t h = 0; h < shape.n_head; ++h) {
      const std::vector<double> s = row_scores(shape, q, qi, h, q_pos0, kv, masks);
      const double lse = log_sum_exp(s);
      if (lse == kNegInf) continue;
      double* dst = scores + (h / group) * score_stride;
      for (int64_t j = 0; j < kv.n_keys; ++j) dst[j] += std::exp(s[static_cast<size_t>(j)] - lse);
    }
  }
}

}  // namespace moa::kernels::reference
