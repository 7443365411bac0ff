// Naive double-precision references for kernels/backward.h and kernels/attention_backward.h,
// each written from its definition. Each backward comes with the double forward it
// differentiates, so tests can check the pair by central finite differences and then compare
// the optimised (F32) kernels with the backward. Attention materialises every A_ij; too slow for
// anything but tests.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/attention_backward.h"
#include "kernels/kernels.h"

namespace moa::kernels::reference {

// Double-precision forwards (same definitions as the float references in reference.h).
void rms_norm(const double* x, const double* weight, int64_t n, int64_t n_tokens, double eps,
              double* y);
void swiglu(const double* gate, const double* up, int64_t n, double* out);
void rope(double* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions,
          const RopeParams& params);
// y[t] = W x[t] with W dequantized (no activation rounding).
void matmul(const WeightMatrix& w, const double* x, int64_t n_tokens, double* y);

void rms_norm_backward(const double* x, const double* weight, const double* dy, int64_t n,
                       int64_t n_tokens, double eps, double* dx);
void swiglu_backward(const double* gate, const double* up, const double* d_hidden, int64_t n,
                     double* d_gate, double* d_up);
void rope_backward(double* dx, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                   const int32_t* positions, const RopeParams& params);
void matmul_transposed(const WeightMatrix& w, const double* dy, int64_t n_tokens, double* dx);

// One sequence's attention in double, laid out as AttentionSequence (positions 0 .. n-1).
struct AttentionInputs {
  const double* q = nullptr;
  const double* k = nullptr;
  const double* v = nullptr;
  int64_t n = 0;
};

// An entry (query head, query, key) of the softmax to leave out of the forward.
struct AttentionEntry {
  int64_t head = -1;
  int64_t query = -1;
  int64_t key = -1;
};

// Causal attention: out [n][n_head][head_dim] and, if lse is set, lse[i * n_head + h]. With
// `removed`, that entry is masked and its row renormalised (what E_ij predicts).
void attention_forward(const AttentionShape& shape, const AttentionInputs& in, double* out,
                       double* lse, const AttentionEntry& removed = {});

// dq, dk, dv of attention_forward for d_out = dL/d(out), from A, g = dL/dA and D = sum_j A g.
void attention_backward(const AttentionShape& shape, const AttentionInputs& in, const double* d_out,
                        double* dq, double* dk, double* dv);

// E[(h * n + i) * n + j] = -A_ij (g_ij - D_i) / (1 - A_ij) for j <= i, 0 above the diagonal,
// evaluated as -A_ij (g_ij - sum_{m != j} A_im g_im / sum_{m != j} A_im) (the same for A_ij < 1,
// no cancellation near 1); -A g where no other key has weight (the first query).
std::vector<double> attention_influence(const AttentionShape& shape, const AttentionInputs& in,
                                        const double* d_out);

// |E| and E summed per KV head by distance i - j (keys j >= sinks) and over the sinks.
InfluenceHistogram influence_histogram(const AttentionShape& shape, int64_t n,
                                       const std::vector<double>& influence, int64_t sinks);

}  // namespace moa::kernels::reference
