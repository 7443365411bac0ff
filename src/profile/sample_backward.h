// One calibration sample's backward pass (METHOD.md s.3): the dense forward over prompt + answer
// at positions 0..n-1, cross-entropy of the answer tokens, and activation gradients (no weight
// gradients) down through every layer, collecting each layer's attention influence histogram.
// Memory: checkpointing. The forward keeps only each layer's input (n_layer x n x n_embd floats);
// the backward recomputes one layer at a time from it with the forward's own blocks, so at most
// one layer's activations (O(n * (n_embd + n_ff))) live at once and never an n x n matrix.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/forward.h"
#include "kernels/attention_backward.h"

namespace moa {

struct SampleInfluence {
  double loss = 0.0;     // mean cross-entropy of the answer tokens
  int64_t n_tokens = 0;  // positions run: prompt + answer minus the last answer token
  std::vector<kernels::InfluenceHistogram> layers;  // [layer]: n_head_kv x n_tokens distances
  std::vector<float> d_input;  // dL/d(layer 0 input) [n_tokens][n_embd] (the embeddings)
};

// Mean cross-entropy of logits row r against targets[r] (rows in order); when `d_logits` is
// given, it receives (softmax - one-hot) / rows, the gradient of that mean.
double answer_cross_entropy(const Logits& logits, std::span<const TokenId> targets,
                            std::vector<float>* d_logits);

// Runs the forward and backward of one sample. The answer's last token is only a target, so
// n_tokens = prompt + answer - 1 positions are run. Throws when the answer is empty, the tokens
// do not fit the model's context, or `sinks` is negative. When `d_block_inputs` is given it
// receives dL/d(residual stream) entering every block, [2 * layer] before the layer's
// attention and [2 * layer + 1] before its FFN (gradient checks block by block).
SampleInfluence backward_sample(const Model& model, std::span<const TokenId> prompt,
                                std::span<const TokenId> answer, int64_t sinks, int n_threads,
                                std::vector<std::vector<float>>* d_block_inputs = nullptr);

}  // namespace moa
