// Naive double-precision references for kernels/attention_weights.h: every score of a row is
// materialised and normalised once, no tiling, no threads. Tests compare the tiled kernel (and
// the H2O cache's score bookkeeping) against these.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/kernels.h"

namespace moa::kernels::reference {

// Row log-sum-exp of the scaled scores over the visible keys; -inf for a row that sees none.
void attention_row_lse(const AttentionShape& shape, const float* q, int64_t n_query, int64_t q_pos0,
                       const KvView& kv, std::span<const BandMask> masks, double* lse);
// scores[g * score_stride + j] += softmax probability of key j, summed over the query heads of
// KV head g and over the queries.
void accumulate_attention_weights(const AttentionShape& shape, const float* q, int64_t n_query,
                                  int64_t q_pos0, const KvView& kv, std::span<const BandMask> masks,
                                  double* scores, int64_t score_stride);

}  // namespace moa::kernels::reference
