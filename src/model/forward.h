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

#include "gguf/gguf_file.h"
#include "kv/attention_cache.h"
#include "kv/kv_cache.h"
#include "model/model_config.h"
#include "model/weights.h"
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

// Convenience forms: a prompt chunk of one sequence, and one token for each of several.
Logits forward_tokens(const Model& model, AttentionCache& cache, int seq,
                      std::span<const TokenId> tokens, LogitsMode mode, int n_threads);
Logits decode_tokens(const Model& model, AttentionCache& cache, std::span<const int> seqs,
                     std::span<const TokenId> tokens, int n_threads);

// Default thread count: the cores available to this process.
int default_thread_count();

}  // namespace moa
