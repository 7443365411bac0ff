// Reads `<arch>.*` hyper-parameters from GGUF metadata with llama.cpp's defaults, validates them,
// and checks the tensors against them so a malformed model fails at load, not mid-forward.
#include "engine/model_config.h"

#include <charconv>
#include <cmath>
#include <cstring>

#include "gguf/quant.h"
#include "util/error.h"
#include "util/printable.h"

namespace moa {
namespace {

constexpr int64_t kMaxDimension = int64_t{1} << 20;

int64_t positive(const gguf::GgufFile& f, const std::string& key, std::optional<int64_t> value) {
  if (!value) fail("{}: required metadata key '{}' is missing", f.path(), key);
  if (*value <= 0 || *value > kMaxDimension) {
    fail("{}: metadata '{}': {} is out of range (expected 1..{})", f.path(), key, *value,
         kMaxDimension);
  }
  return *value;
}

int64_t required_count(const gguf::GgufFile& f, const std::string& key) {
  return positive(f, key, f.find_int(key));
}

int64_t optional_count(const gguf::GgufFile& f, const std::string& key, int64_t fallback) {
  return positive(f, key, f.find_int(key).value_or(fallback));
}

float positive_float(const gguf::GgufFile& f, const std::string& key, double fallback) {
  double v = f.find_float(key).value_or(fallback);
  if (!std::isfinite(v) || v <= 0)
    fail("{}: metadata '{}': {} is not a positive number", f.path(), key, v);
  return static_cast<float>(v);
}

void read_rope_scaling(const gguf::GgufFile& f, const std::string& p, ModelConfig& c) {
  std::string type = f.find_string(p + "rope.scaling.type").value_or("none");
  double factor = f.find_float(p + "rope.scaling.factor").value_or(0.0);
  if (auto linear = f.find_float(p + "rope.scale_linear")) {  // older files
    type = "linear";
    factor = *linear;
  }
  if (type == "linear" && factor != 0.0 && factor != 1.0) {
    c.rope_scaling = RopeScaling::kLinear;
    c.rope_scale_factor = positive_float(f, p + "rope.scaling.factor", factor);
  } else if (type == "yarn") {
    fail(
        "{}: metadata '{}rope.scaling.type': 'yarn' is not supported (supported: none, linear, "
        "llama3 rope_freqs)",
        f.path(), p);
  } else if (type != "none" && type != "linear") {
    fail("{}: metadata '{}rope.scaling.type': unknown value '{}' (expected none, linear)", f.path(),
         p, printable(type));
  }
  c.rope_orig_ctx = f.find_int(p + "rope.scaling.original_context_length").value_or(0);
  if (const gguf::TensorInfo* freqs = f.find_tensor("rope_freqs.weight")) {
    if (freqs->type != gguf::TensorType::kF32 || freqs->n_elements() != c.n_rot / 2) {
      fail("{}: tensor 'rope_freqs.weight': expected F32 [{}], got {} {}", f.path(), c.n_rot / 2,
           gguf::tensor_type_name(static_cast<uint32_t>(freqs->type)), freqs->shape_string());
    }
    c.rope_freq_factors.resize(c.n_rot / 2);
    std::memcpy(c.rope_freq_factors.data(), freqs->data,
                c.rope_freq_factors.size() * sizeof(float));
    c.rope_scaling = RopeScaling::kLlama3;
  }
}

int64_t read_vocab_size(const gguf::GgufFile& f, const std::string& p) {
  if (auto n = f.find_int(p + "vocab_size")) return positive(f, p + "vocab_size", n);
  if (auto n = f.find_array_size("tokenizer.ggml.tokens"))
    return positive(f, "tokenizer.ggml.tokens", static_cast<int64_t>(*n));
  if (const gguf::TensorInfo* emb = f.find_tensor("token_embd.weight"); emb && emb->ne.size() == 2)
    return emb->ne[1];
  fail(
      "{}: cannot tell the vocabulary size (no '{}vocab_size', tokenizer.ggml.tokens or "
      "token_embd.weight)",
      f.path(), p);
}

}  // namespace

KvShape kv_shape(const ModelConfig& config, int64_t n_ctx, int n_seq, kernels::KvType type) {
  return {config.n_layer, config.n_head_kv, config.head_dim, n_ctx, n_seq, type};
}

ModelIdentity identity_of(const ModelConfig& config, const std::string& hash) {
  return {config.arch_name, config.n_layer, config.n_head, config.n_head_kv, hash};
}

const char* architecture_name(Architecture arch) {
  return arch == Architecture::kQwen2 ? "qwen2" : "llama";
}
const char* rope_type_name(RopeType type) { return type == RopeType::kNeox ? "neox" : "normal"; }

ModelConfig read_model_config(const gguf::GgufFile& f) {
  ModelConfig c;
  c.arch_name = f.get_string("general.architecture");
  if (c.arch_name == "llama") {
    c.arch = Architecture::kLlama;
  } else if (c.arch_name == "qwen2") {
    c.arch = Architecture::kQwen2;
  } else {
    fail("{}: architecture '{}' is not supported (supported: llama, qwen2)", f.path(),
         printable(c.arch_name));
  }
  const std::string p = c.arch_name + ".";
  c.name = f.find_string("general.name").value_or("");
  c.n_layer = required_count(f, p + "block_count");
  c.n_embd = required_count(f, p + "embedding_length");
  c.n_ff = required_count(f, p + "feed_forward_length");
  c.n_head = required_count(f, p + "attention.head_count");
  c.n_head_kv = optional_count(f, p + "attention.head_count_kv", c.n_head);
  if (c.n_head % c.n_head_kv != 0) {
    fail("{}: metadata '{}attention.head_count_kv': {} does not divide head_count {}", f.path(), p,
         c.n_head_kv, c.n_head);
  }
  if (!f.has(p + "attention.key_length") && c.n_embd % c.n_head != 0) {
    fail("{}: metadata '{}attention.head_count': {} does not divide embedding_length {}", f.path(),
         p, c.n_head, c.n_embd);
  }
  c.head_dim = optional_count(f, p + "attention.key_length", c.n_embd / c.n_head);
  if (optional_count(f, p + "attention.value_length", c.head_dim) != c.head_dim) {
    fail("{}: metadata '{}attention.value_length': must equal key_length {}", f.path(), p,
         c.head_dim);
  }
  c.n_ctx_train = required_count(f, p + "context_length");
  c.n_rot = optional_count(f, p + "rope.dimension_count", c.head_dim);
  if (c.n_rot > c.head_dim || c.n_rot % 2 != 0) {
    fail("{}: metadata '{}rope.dimension_count': {} must be even and at most the head size {}",
         f.path(), p, c.n_rot, c.head_dim);
  }
  c.rope_type = c.arch == Architecture::kQwen2 ? RopeType::kNeox : RopeType::kNormal;
  c.rope_freq_base = positive_float(f, p + "rope.freq_base", 10000.0);
  c.rms_eps = positive_float(f, p + "attention.layer_norm_rms_epsilon", 1e-5);
  if (!f.has(p + "attention.layer_norm_rms_epsilon")) {
    fail("{}: required metadata key '{}attention.layer_norm_rms_epsilon' is missing", f.path(), p);
  }
  read_rope_scaling(f, p, c);
  c.n_vocab = read_vocab_size(f, p);
  c.has_qkv_bias = c.arch == Architecture::kQwen2;
  c.tied_output = f.find_tensor("output.weight") == nullptr;
  return c;
}

namespace {

void expect_tensor(const gguf::GgufFile& f, const std::string& name, std::vector<int64_t> ne,
                   bool matrix) {
  const gguf::TensorInfo& t = f.tensor(name);
  if (t.ne != ne) {
    std::string want = "[";
    for (size_t i = 0; i < ne.size(); ++i) want += (i ? ", " : "") + std::to_string(ne[i]);
    fail("{}: tensor '{}': shape {} does not match the metadata (expected {}])", f.path(), name,
         t.shape_string(), want);
  }
  const char* type = gguf::tensor_type_name(static_cast<uint32_t>(t.type));
  if (!gguf::is_supported_type(t.type)) {
    fail("{}: tensor '{}': type {} is not supported (supported: {})", f.path(), name, type,
         gguf::supported_type_names());
  }
  if (!matrix && t.type != gguf::TensorType::kF32) {
    fail("{}: tensor '{}': norm/bias vectors must be F32, got {}", f.path(), name, type);
  }
}

// A tensor of a block past block_count would be silently ignored: the model would run short.
void check_no_extra_blocks(const gguf::GgufFile& f, const ModelConfig& c) {
  for (const gguf::TensorInfo& t : f.tensors()) {
    if (!t.name.starts_with("blk.")) continue;
    int64_t block = 0;
    const char* digits = t.name.c_str() + 4;
    const auto [end, error] = std::from_chars(digits, t.name.c_str() + t.name.size(), block);
    if (error == std::errc() && end != digits && block >= c.n_layer) {
      fail("{}: metadata '{}.block_count' is {} but tensor '{}' belongs to block {}", f.path(),
           c.arch_name, c.n_layer, printable(t.name), block);
    }
  }
}

}  // namespace

void check_model_tensors(const gguf::GgufFile& f, const ModelConfig& c) {
  check_no_extra_blocks(f, c);
  expect_tensor(f, "token_embd.weight", {c.n_embd, c.n_vocab}, true);
  expect_tensor(f, "output_norm.weight", {c.n_embd}, false);
  if (!c.tied_output) expect_tensor(f, "output.weight", {c.n_embd, c.n_vocab}, true);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    expect_tensor(f, b + "attn_norm.weight", {c.n_embd}, false);
    expect_tensor(f, b + "attn_q.weight", {c.n_embd, c.q_dim()}, true);
    expect_tensor(f, b + "attn_k.weight", {c.n_embd, c.kv_dim()}, true);
    expect_tensor(f, b + "attn_v.weight", {c.n_embd, c.kv_dim()}, true);
    expect_tensor(f, b + "attn_output.weight", {c.q_dim(), c.n_embd}, true);
    expect_tensor(f, b + "ffn_norm.weight", {c.n_embd}, false);
    expect_tensor(f, b + "ffn_gate.weight", {c.n_embd, c.n_ff}, true);
    expect_tensor(f, b + "ffn_up.weight", {c.n_embd, c.n_ff}, true);
    expect_tensor(f, b + "ffn_down.weight", {c.n_ff, c.n_embd}, true);
    if (c.has_qkv_bias) {
      expect_tensor(f, b + "attn_q.bias", {c.q_dim()}, false);
      expect_tensor(f, b + "attn_k.bias", {c.kv_dim()}, false);
      expect_tensor(f, b + "attn_v.bias", {c.kv_dim()}, false);
    }
  }
}

int64_t count_parameters(const gguf::GgufFile& f) {
  int64_t n = 0;
  for (const gguf::TensorInfo& t : f.tensors()) n += t.n_elements();
  return n;
}

uint64_t weight_bytes(const gguf::GgufFile& f) {
  uint64_t n = 0;
  for (const gguf::TensorInfo& t : f.tensors()) n += t.n_bytes;
  return n;
}

}  // namespace moa
