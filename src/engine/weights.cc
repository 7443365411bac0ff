// Binds GGUF tensors to the forward pass's weight structs (see weights.h). Shapes are checked
// here too so that a forward pass never reads past a tensor, whoever built the config.
#include "engine/weights.h"

#include <fmt/format.h>

#include <string>

#include "gguf/quant.h"
#include "util/error.h"

namespace moa {

namespace {

const gguf::TensorInfo& typed_tensor(const gguf::GgufFile& file, const std::string& name) {
  const gguf::TensorInfo& tensor = file.tensor(name);
  if (!gguf::is_supported_type(tensor.type)) {
    const char* type_name = gguf::tensor_type_name(static_cast<uint32_t>(tensor.type));
    fail("{}: tensor '{}': type {} is not supported (supported: {})", file.path(), name,
         type_name != nullptr ? type_name : "unknown", gguf::supported_type_names());
  }
  return tensor;
}

kernels::WeightMatrix bind_matrix(const gguf::GgufFile& file, const std::string& name, int64_t rows,
                                  int64_t cols) {
  const gguf::TensorInfo& tensor = typed_tensor(file, name);
  if (tensor.ne.size() != 2 || tensor.ne[0] != cols || tensor.ne[1] != rows) {
    fail("{}: tensor '{}': shape {} does not match the metadata (expected [{}, {}])", file.path(),
         name, tensor.shape_string(), cols, rows);
  }
  return weight_matrix(tensor);
}

std::vector<float> bind_vector(const gguf::GgufFile& file, const std::string& name, int64_t n) {
  const gguf::TensorInfo& tensor = typed_tensor(file, name);
  if (tensor.n_elements() != n || tensor.row_length() != n) {
    fail("{}: tensor '{}': shape {} does not match the metadata (expected [{}])", file.path(), name,
         tensor.shape_string(), n);
  }
  std::vector<float> values(static_cast<size_t>(n));
  gguf::dequantize_row(tensor.type, tensor.data, values.data(), n);
  return values;
}

LayerWeights bind_layer(const gguf::GgufFile& file, const ModelConfig& config, int64_t layer) {
  const std::string prefix = fmt::format("blk.{}.", layer);
  const int64_t n_embd = config.n_embd;
  LayerWeights w;
  w.attn_norm = bind_vector(file, prefix + "attn_norm.weight", n_embd);
  w.attn_q = bind_matrix(file, prefix + "attn_q.weight", config.q_dim(), n_embd);
  w.attn_k = bind_matrix(file, prefix + "attn_k.weight", config.kv_dim(), n_embd);
  w.attn_v = bind_matrix(file, prefix + "attn_v.weight", config.kv_dim(), n_embd);
  if (config.has_qkv_bias) {
    w.bias_q = bind_vector(file, prefix + "attn_q.bias", config.q_dim());
    w.bias_k = bind_vector(file, prefix + "attn_k.bias", config.kv_dim());
    w.bias_v = bind_vector(file, prefix + "attn_v.bias", config.kv_dim());
  }
  w.attn_output = bind_matrix(file, prefix + "attn_output.weight", n_embd, config.q_dim());
  w.ffn_norm = bind_vector(file, prefix + "ffn_norm.weight", n_embd);
  w.ffn_gate = bind_matrix(file, prefix + "ffn_gate.weight", config.n_ff, n_embd);
  w.ffn_up = bind_matrix(file, prefix + "ffn_up.weight", config.n_ff, n_embd);
  w.ffn_down = bind_matrix(file, prefix + "ffn_down.weight", n_embd, config.n_ff);
  return w;
}

}  // namespace

kernels::WeightMatrix weight_matrix(const gguf::TensorInfo& tensor) {
  kernels::WeightMatrix w;
  w.type = tensor.type;
  w.data = tensor.data;
  w.cols = tensor.row_length();
  w.rows = tensor.n_rows();
  return w;
}

ModelWeights bind_weights(const gguf::GgufFile& file, const ModelConfig& config) {
  ModelWeights weights;
  weights.token_embd = bind_matrix(file, "token_embd.weight", config.n_vocab, config.n_embd);
  weights.output_norm = bind_vector(file, "output_norm.weight", config.n_embd);
  weights.output = config.tied_output
                       ? weights.token_embd
                       : bind_matrix(file, "output.weight", config.n_vocab, config.n_embd);
  weights.layers.reserve(static_cast<size_t>(config.n_layer));
  for (int64_t layer = 0; layer < config.n_layer; ++layer) {
    weights.layers.push_back(bind_layer(file, config, layer));
  }
  return weights;
}

void embed_token(const kernels::WeightMatrix& table, int32_t token, float* out) {
  if (token < 0 || token >= table.rows) {
    fail("token id {} is outside the vocabulary (0 .. {})", token, table.rows - 1);
  }
  const size_t stride = gguf::row_bytes(table.type, table.cols);
  const auto* row = static_cast<const uint8_t*>(table.data) + stride * static_cast<size_t>(token);
  gguf::dequantize_row(table.type, row, out, table.cols);
}

}  // namespace moa
