// The tensors of a loaded model bound by name to the forward pass: weight matrices stay in their
// stored format as views into the GGUF mapping (nothing is expanded to F32); only the small
// vectors (norm weights, QKV biases) are copied out as F32.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/model_config.h"
#include "gguf/gguf_file.h"
#include "kernels/kernels.h"

namespace moa {

struct LayerWeights {
  std::vector<float> attn_norm;               // [n_embd]
  kernels::WeightMatrix attn_q;               // [q_dim x n_embd]
  kernels::WeightMatrix attn_k;               // [kv_dim x n_embd]
  kernels::WeightMatrix attn_v;               // [kv_dim x n_embd]
  std::vector<float> bias_q, bias_k, bias_v;  // qwen2 only, empty otherwise
  kernels::WeightMatrix attn_output;          // [n_embd x q_dim]
  std::vector<float> ffn_norm;                // [n_embd]
  kernels::WeightMatrix ffn_gate;             // [n_ff x n_embd]
  kernels::WeightMatrix ffn_up;               // [n_ff x n_embd]
  kernels::WeightMatrix ffn_down;             // [n_embd x n_ff]
};

struct ModelWeights {
  kernels::WeightMatrix token_embd;  // [n_vocab x n_embd]
  std::vector<float> output_norm;    // [n_embd]
  kernels::WeightMatrix output;      // [n_vocab x n_embd]; token_embd when tied
  std::vector<LayerWeights> layers;
};

// Binds every tensor the forward pass needs; `file` must outlive the result. Throws moa::Error
// naming the tensor when one is missing, has the wrong shape or a type moa cannot read.
ModelWeights bind_weights(const gguf::GgufFile& file, const ModelConfig& config);

// A stored-format view of a 2-D tensor.
kernels::WeightMatrix weight_matrix(const gguf::TensorInfo& tensor);

// Copies the embedding row of `token` (dequantized) into out[0 .. cols).
void embed_token(const kernels::WeightMatrix& table, int32_t token, float* out);

}  // namespace moa
