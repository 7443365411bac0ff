// Random-weight model builder (see random_model.h). Weights are N(0, 1/fan_in) so activations
// stay O(1) through the layers, which keeps optimised-vs-reference comparisons meaningful.
#include "engine/random_model.h"

#include <cmath>
#include <random>

#include "gguf/quant.h"
#include "util/error.h"

namespace moa {
namespace {

using gguf::TensorType;

std::vector<float> normal_values(std::mt19937_64& rng, int64_t n, float mean, float stddev) {
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// A SentencePiece vocab: <unk> <s> </s>, the 256 byte tokens, then pieces for letters and words.
void add_spm_vocab(gguf::GgufWriter& w, int64_t n_vocab) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(fmt::format("<0x{:02X}>", b));
    types.push_back(6);
  }
  const std::string space = "\xE2\x96\x81";  // U+2581
  std::vector<std::string> pieces = {space};
  for (char c = 'a'; c <= 'z'; ++c) pieces.push_back(std::string(1, c));
  for (char c = 'a'; c <= 'z'; ++c) pieces.push_back(space + c);
  for (const char* word : {"the", "he", "in", "on", "ce", "up", "time", "once", "upon"})
    pieces.push_back(space + word);
  for (size_t i = 0; tokens.size() < static_cast<size_t>(n_vocab); ++i) {
    tokens.push_back(i < pieces.size() ? pieces[i] : fmt::format("{}tok{}", space, i));
    types.push_back(1);
  }
  std::vector<float> scores(tokens.size(), 0.0f);
  for (size_t i = 259; i < tokens.size(); ++i)
    scores[i] = -static_cast<float>(i - 259) * 0.01f - 1.0f;
  w.set_string("tokenizer.ggml.model", "llama");
  w.set("tokenizer.ggml.tokens", gguf::Value::string_array(tokens));
  w.set("tokenizer.ggml.scores", gguf::Value::f32_array(scores));
  w.set("tokenizer.ggml.token_type", gguf::Value::i32_array(types));
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
}

void check_block(const RandomModelSpec& s, int64_t n, const char* what) {
  int64_t block = gguf::type_block_elements(s.weight_type);
  if (block == 0 || n % block != 0) {
    fail("random model: {} = {} is not a multiple of the {} block size {}", what, n,
         gguf::tensor_type_name(static_cast<uint32_t>(s.weight_type)), block);
  }
}

}  // namespace

gguf::GgufWriter build_random_model(const RandomModelSpec& s) {
  if (s.n_vocab < 300) fail("random model: n_vocab {} is below the minimum 300", s.n_vocab);
  if (s.n_head % s.n_head_kv != 0 || s.n_embd % s.n_head != 0)
    fail("random model: head counts do not divide");
  check_block(s, s.n_embd, "n_embd");
  check_block(s, s.n_ff, "n_ff");
  const std::string arch = architecture_name(s.arch);
  const std::string p = arch + ".";
  const int64_t head_dim = s.n_embd / s.n_head, kv_dim = head_dim * s.n_head_kv;
  gguf::GgufWriter w;
  w.set_string("general.architecture", arch);
  w.set_string("general.name", "moa-random-" + arch);
  w.set_u32(p + "block_count", static_cast<uint32_t>(s.n_layer));
  w.set_u32(p + "embedding_length", static_cast<uint32_t>(s.n_embd));
  w.set_u32(p + "feed_forward_length", static_cast<uint32_t>(s.n_ff));
  w.set_u32(p + "attention.head_count", static_cast<uint32_t>(s.n_head));
  w.set_u32(p + "attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  w.set_u32(p + "context_length", static_cast<uint32_t>(s.n_ctx));
  w.set_u32(p + "rope.dimension_count", static_cast<uint32_t>(head_dim));
  w.set_f32(p + "rope.freq_base", s.rope_freq_base);
  w.set_f32(p + "attention.layer_norm_rms_epsilon", 1e-5f);
  if (s.rope_linear_factor != 1.0f) {
    w.set_string(p + "rope.scaling.type", "linear");
    w.set_f32(p + "rope.scaling.factor", s.rope_linear_factor);
  }
  add_spm_vocab(w, s.n_vocab);

  std::mt19937_64 rng(s.seed);
  auto matrix = [&](const std::string& name, int64_t cols, int64_t rows) {
    w.add_tensor(name, s.weight_type, {cols, rows},
                 normal_values(rng, cols * rows, 0.0f, 1.0f / std::sqrt(float(cols))));
  };
  auto vector = [&](const std::string& name, int64_t n, float mean, float stddev) {
    w.add_tensor(name, TensorType::kF32, {n}, normal_values(rng, n, mean, stddev));
  };
  w.add_tensor("token_embd.weight", s.weight_type, {s.n_embd, s.n_vocab},
               normal_values(rng, s.n_embd * s.n_vocab, 0.0f, 1.0f));
  vector("output_norm.weight", s.n_embd, 1.0f, 0.1f);
  if (!s.tied_output) matrix("output.weight", s.n_embd, s.n_vocab);
  if (s.llama3_rope_freqs) {
    std::vector<float> factors(static_cast<size_t>(head_dim / 2));
    for (size_t i = 0; i < factors.size(); ++i) factors[i] = 1.0f + static_cast<float>(i % 4);
    w.add_tensor("rope_freqs.weight", TensorType::kF32, {head_dim / 2}, factors);
  }
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    vector(b + "attn_norm.weight", s.n_embd, 1.0f, 0.1f);
    matrix(b + "attn_q.weight", s.n_embd, s.n_embd);
    matrix(b + "attn_k.weight", s.n_embd, kv_dim);
    matrix(b + "attn_v.weight", s.n_embd, kv_dim);
    if (s.arch == Architecture::kQwen2) {
      vector(b + "attn_q.bias", s.n_embd, 0.0f, 0.1f);
      vector(b + "attn_k.bias", kv_dim, 0.0f, 0.1f);
      vector(b + "attn_v.bias", kv_dim, 0.0f, 0.1f);
    }
    matrix(b + "attn_output.weight", s.n_embd, s.n_embd);
    vector(b + "ffn_norm.weight", s.n_embd, 1.0f, 0.1f);
    matrix(b + "ffn_gate.weight", s.n_embd, s.n_ff);
    matrix(b + "ffn_up.weight", s.n_embd, s.n_ff);
    matrix(b + "ffn_down.weight", s.n_ff, s.n_embd);
  }
  return w;
}

void write_random_model(const RandomModelSpec& spec, const std::string& path) {
  build_random_model(spec).write(path);
}

}  // namespace moa
