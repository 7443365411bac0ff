// Backward pass of causal attention over one sequence, flash-attention-2 style (never an N x N
// matrix), and in the same pass MoA's attention influence (METHOD.md section 3): for every
// softmax entry A_ij the first-order loss change of masking it and renormalising the row,
//     E_ij = -A_ij (g_ij - D_i) / (1 - A_ij),  g_ij = dL/dA_ij = d_o_i . v_j,  D_i = d_o_i . o_i,
// summed as |E_ij| per KV head by distance i - j, so that the loss of every elastic rule is a
// suffix sum. Naive double-precision references: kernels/backward_reference.h.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernels.h"

namespace moa::kernels {

// Where A_ij is close to 1, 1 - A_ij and g_ij - D_i both cancel; E is then taken in its
// equivalent form -A_ij (g_ij - sum_{n != j} A_in g_in / sum_{n != j} A_in) (the loss change of
// renormalising onto the other keys). The reference implementation adds F32 epsilon to 1 - A_ij
// instead, which shrinks E towards 0 once 1 - A_ij is below ~1e-6: a head that puts all its
// weight on one far key would look free to mask. A row with no other key (the sequence's first
// query) keeps E = -A g, as there.

// Sum of |E_ij| per KV head (over the query heads sharing it): by distance d = i - j for keys
// j >= sinks, and the sinks' part separately; beside it the same sums of the signed E_ij (the
// first-order loss change itself, which a real mask of many entries adds up to, where |E| is
// what the optimizer prices). Accumulated in double; `add` sums samples.
struct InfluenceHistogram {
  int64_t n_head_kv = 0;
  int64_t max_distance = 0;                // distances 0 .. max_distance - 1
  int64_t samples = 0;                     // sequences summed in
  std::vector<double> by_distance;         // [kv_head][distance]: sum of |E|
  std::vector<double> sink;                // [kv_head]: sum of |E|
  std::vector<double> signed_by_distance;  // [kv_head][distance]: sum of E
  std::vector<double> signed_sink;         // [kv_head]: sum of E

  // Sizes the histogram for one sample and zeroes it.
  void reset(int64_t kv_heads, int64_t distances);
  double& at(int64_t kv_head, int64_t distance) {
    return by_distance[static_cast<size_t>(kv_head * max_distance + distance)];
  }
  double at(int64_t kv_head, int64_t distance) const {
    return by_distance[static_cast<size_t>(kv_head * max_distance + distance)];
  }
  // Adds another histogram (the longer one's distance range is kept); KV heads must agree.
  void add(const InfluenceHistogram& other);
  // sum of by_distance[kv_head][d] over d >= first: the influence of every non-sink entry a
  // band of span `first` masks.
  double tail_sum(int64_t kv_head, int64_t first) const;
  // sum of signed_by_distance[kv_head][d] over d >= first: the first-order loss change of that
  // band's mask.
  double signed_tail_sum(int64_t kv_head, int64_t first) const;
};

// One sequence's attention inputs at positions 0 .. n-1: q [n][n_head][head_dim] (after RoPE),
// k and v [n][n_head_kv * head_dim] (k after RoPE), all F32 as the forward produced them.
struct AttentionSequence {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t n = 0;
};

// Causal attention forward (kernels::attention_accumulate's tiles) that also returns each row's
// softmax statistic: lse[i * n_head + h] = log sum_j exp(scale * q_i . k_j) over j <= i.
// out is [n][n_head][head_dim].
void attention_forward_with_stats(const AttentionShape& shape, const AttentionSequence& seq,
                                  float* out, float* lse, int n_threads);

// What attention_backward writes: gradients laid out like their inputs (any may be null to skip
// it) and, when `influence` is set, the histograms of |E| and E (reset to n_head_kv x n first).
struct AttentionGradients {
  float* dq = nullptr;  // [n][n_head][head_dim]
  float* dk = nullptr;  // [n][n_head_kv * head_dim]
  float* dv = nullptr;  // [n][n_head_kv * head_dim]
  InfluenceHistogram* influence = nullptr;
  int64_t sinks = 0;  // keys j < sinks count as sink mass, not by distance
};

// Gradients of causal attention given the forward output `out`, its row statistics `lse`
// (attention_forward_with_stats) and d_out = dL/d(out). Two passes over tiles of 64 queries x
// 64 keys per KV head, with P recomputed from lse: one per key tile (dK, dV), one per query
// tile (dQ and the influence histogram, per-thread, summed in thread order: deterministic for a
// given thread count). Memory O(n * (n_head + n_head_kv) * head_dim).
void attention_backward(const AttentionShape& shape, const AttentionSequence& seq, const float* out,
                        const float* lse, const float* d_out, const AttentionGradients& grads,
                        int n_threads);

}  // namespace moa::kernels
