// One calibration sample's backward pass (METHOD.md s.3): the dense forward over prompt + answer
// at positions 0..n-1, cross-entropy of the answer tokens, and activation gradients (no weight
// gradients) down through every layer, collecting each layer's attention influence histogram.
// Memory, all linear in n (never an n x n matrix): the forward keeps each layer's input and, as
// far as a byte budget allows, the activations the backward needs (attention's q, k, v, output
// and row statistics plus the FFN input, then the FFN's gate and up); a layer whose activations
// were not kept is recomputed from its input with the forward's own blocks. Kept or recomputed,
// the values are the same, so the results do not depend on the budget.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/forward.h"
#include "kernels/attention_backward.h"
#include "profile/backward_weights.h"

namespace moa {

struct SampleInfluence {
  double loss = 0.0;     // mean cross-entropy of the answer tokens
  int64_t n_tokens = 0;  // positions run: prompt + answer minus the last answer token
  std::vector<kernels::InfluenceHistogram> layers;  // [layer]: n_head_kv x n_tokens distances
  std::vector<float> d_input;  // dL/d(layer 0 input) [n_tokens][n_embd] (the embeddings)
  int64_t kept_attention = 0;  // layers whose attention block the forward kept (not recomputed)
  int64_t kept_ffn = 0;        // layers whose gate and up the forward kept
};

// Mean cross-entropy of logits row r against targets[r] (rows in order); when `d_logits` is
// given, it receives (softmax - one-hot) / rows, the gradient of that mean.
double answer_cross_entropy(const Logits& logits, std::span<const TokenId> targets,
                            std::vector<float>* d_logits);

// Bytes per position and layer that keeping a block's activations costs (beyond the layer input
// the forward always keeps): the attention block's q, k, v, output, lse and the FFN input, and
// the FFN's gate and up.
struct KeptActivationBytes {
  int64_t attention = 0;
  int64_t ffn = 0;
};
KeptActivationBytes kept_activation_bytes(const ModelConfig& c);

struct BackwardOptions {
  int64_t sinks = 0;  // G: keys j < G count as sink influence
  int n_threads = 1;
  // Bytes the forward may keep beyond the layer inputs: attention blocks first (their recompute
  // grows with n), then FFNs, layer by layer; 0 recomputes every layer.
  int64_t keep_bytes = INT64_MAX;
};

// Runs the forward and backward of one sample. The answer's last token is only a target, so
// n_tokens = prompt + answer - 1 positions are run. Throws when the answer is empty, the tokens
// do not fit the model's context, or `sinks` is negative. `weights` multiplies by the weights'
// transposes (null: a BackwardWeights of this call alone, not exact). When `d_block_inputs` is
// given it receives dL/d(residual stream) entering every block, [2 * layer] before the layer's
// attention and [2 * layer + 1] before its FFN (gradient checks block by block).
SampleInfluence backward_sample(const Model& model, std::span<const TokenId> prompt,
                                std::span<const TokenId> answer, const BackwardOptions& options,
                                BackwardWeights* weights = nullptr,
                                std::vector<std::vector<float>>* d_block_inputs = nullptr);

}  // namespace moa
