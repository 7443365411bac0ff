// Attention probabilities summed per key: what H2O (heavy-hitter eviction) accumulates to rank
// the keys of a KV head. Same conventions as kernels::attention (KvView key j sits at absolute
// position j, causal, optional per-KV-head BandMask), so the probabilities are exactly those the
// attention output was computed with. Two passes over key tiles (row log-sum-exp, then
// probabilities), never an N x N matrix; the first pass is skipped when the caller knows the
// log-sum-exp. Naive reference: kernels/attention_weights_reference.h.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/kernels.h"

namespace moa::kernels {

// lse[qi * n_head + h] = log sum_j exp(scale * q·k_j) over the keys j visible from query qi of
// head h (q laid out [n_query][n_head][head_dim] at positions q_pos0 + qi); -inf for a row
// that sees no key.
void attention_row_lse(const AttentionShape& shape, const float* q, int64_t n_query, int64_t q_pos0,
                       const KvView& kv, std::span<const BandMask> masks, float* lse,
                       int n_threads);

// For every KV head g and key j < kv.n_keys adds to scores[g * score_stride + j] the softmax
// probability of key j summed over the query heads of g's group and over the n_query queries.
// `row_lse` is attention_row_lse's output, or null to have it recomputed here.
void accumulate_attention_weights(const AttentionShape& shape, const float* q, int64_t n_query,
                                  int64_t q_pos0, const KvView& kv, std::span<const BandMask> masks,
                                  const float* row_lse, float* scores, int64_t score_stride,
                                  int n_threads);

}  // namespace moa::kernels
