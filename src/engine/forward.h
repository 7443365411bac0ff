// The forward pass of a decoder-only transformer (llama, qwen2). A `Model` owns the mapped GGUF
// file, its config, bound weights and tokenizer; `forward` runs new tokens of one or more
// sequences against an AttentionCache (dense, static sparse rings, H2O) and returns logits.
// Prefill (many tokens of one sequence) and batch decode (one token of each of several
// sequences) are the same call with different batches, so a benchmark can time either at any
// cache depth.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/model_config.h"
#include "engine/weights.h"
#include "gguf/gguf_file.h"
#include "kv/attention_cache.h"
#include "kv/kv_cache.h"
#include "tokenizer/tokenizer.h"

namespace moa {

class Model {
 public:
  // Opens `path`, reads and checks the config against the tensors, binds weights and tokenizer.
  // By default the file is read into huge pages (decode streams it every token); kMap maps it.
  static Model load(const std::string& path, FileLoad load = FileLoad::kReadIntoHugePages);
  static Model from_file(gguf::GgufFile file);

  const gguf::GgufFile& file() const { return *file_; }
  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }

 private:
  Model() = default;
  std::unique_ptr<gguf::GgufFile> file_;  // heap-held: weights point into its mapping
  ModelConfig config_;
  ModelWeights weights_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

// New tokens of one sequence, placed at the next positions of its cache.
struct SequenceBatch {
  int seq = 0;
  std::span<const TokenId> tokens;
};

enum class LogitsMode { kLast, kAll };

// Logits rows in batch order: with kLast one row per SequenceBatch (its last token), with kAll
// one row per token. Row r is at data[r * n_vocab].
struct Logits {
  int64_t n_vocab = 0;
  std::vector<float> data;
  int64_t n_rows() const { return n_vocab == 0 ? 0 : static_cast<int64_t>(data.size()) / n_vocab; }
  std::span<const float> row(int64_t r) const {
    return {data.data() + r * n_vocab, static_cast<size_t>(n_vocab)};
  }
};

// Runs the batch through every layer, hands keys/values and queries to `cache` (dense KvCache,
// StaticKvCache, H2O: the cache decides which keys attention sees) and advances each
// sequence's length. Throws (before computing anything) when a sequence would exceed the
// context or the cache's chunk size, appears twice, or a token id is outside the vocabulary.
Logits forward(const Model& model, AttentionCache& cache, std::span<const SequenceBatch> batch,
               LogitsMode mode, int n_threads);

// The forward's layer blocks, callable one at a time (the profiler recomputes a layer from its
// input during the backward): embed_batch places and embeds a batch, then per layer
// attention_block and ffn_block, then logits_for_rows. `forward` is exactly these calls.

// Where each sequence's tokens sit in the batch rows and in its cache.
struct BatchPlacement {
  int seq = 0;
  int64_t row0 = 0;  // first batch row
  int64_t n = 0;     // tokens
  int64_t pos0 = 0;  // cache position of the first token
};

// Activations of n rows (tokens) of a batch. After attention_block, q/k (after RoPE), v and att
// hold that layer's values; after ffn_block, gate/up/hidden do; x is always the residual stream.
struct ForwardActivations {
  std::vector<BatchPlacement> placements;
  std::vector<int32_t> positions;  // [n]
  std::vector<float> x;            // residual stream [n][n_embd]
  std::vector<float> xb;           // normed input of a block [n][n_embd]
  std::vector<float> q;            // [n][q_dim]
  std::vector<float> k;            // [n][kv_dim]
  std::vector<float> v;            // [n][kv_dim]
  std::vector<float> att;          // attention output [n][q_dim]
  std::vector<float> proj;         // block output before the residual add [n][n_embd]
  std::vector<float> gate;         // [n][n_ff]
  std::vector<float> up;           // [n][n_ff]
  std::vector<float> hidden;       // silu(gate) * up [n][n_ff]

  int64_t n_rows() const { return static_cast<int64_t>(positions.size()); }
};

// Checks the batch against the cache (as `forward` documents), sizes the activations and embeds
// the tokens into x. The cache is not advanced.
ForwardActivations embed_batch(const Model& model, const AttentionCache& cache,
                               std::span<const SequenceBatch> batch);
// x += attn_output(attention(rope(q, k), v)) of rms_norm(x), attending through `cache`.
void attention_block(const Model& model, int64_t layer, AttentionCache& cache,
                     ForwardActivations& a, int n_threads);
// xb = rms_norm(x), gate and up of xb: the FFN's first half (the backward recomputes it).
void ffn_gate_up(const Model& model, int64_t layer, ForwardActivations& a, int n_threads);
// x += ffn_down(silu(gate) * up) of rms_norm(x).
void ffn_block(const Model& model, int64_t layer, ForwardActivations& a, int n_threads);
// Final norm and output head of the given rows of x, in that order.
Logits logits_for_rows(const Model& model, const ForwardActivations& a,
                       std::span<const int64_t> rows, int n_threads);

// The model's RoPE and attention shape as the forward applies them (and the backward inverts).
kernels::RopeParams rope_params(const ModelConfig& c);
kernels::AttentionShape attention_shape(const ModelConfig& c);

// Convenience forms: a prompt chunk of one sequence, and one token for each of several.
Logits forward_tokens(const Model& model, AttentionCache& cache, int seq,
                      std::span<const TokenId> tokens, LogitsMode mode, int n_threads);
Logits decode_tokens(const Model& model, AttentionCache& cache, std::span<const int> seqs,
                     std::span<const TokenId> tokens, int n_threads);

// Default thread count: the cores available to this process.
int default_thread_count();

}  // namespace moa
