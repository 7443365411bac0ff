// The dense forward pass, written to be read top to bottom like llama2.c's forward(): embed,
// then per layer rmsnorm -> q/k/v -> rope -> cache -> attention -> output projection ->
// residual -> rmsnorm -> swiglu ffn -> residual, then final norm and logits. All tokens of the
// batch go through the matrix products together (GEMM for prefill, one matvec per row block
// for batch decode); only attention runs per sequence, against that sequence's cache.
#include "engine/forward.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>
#include <string_view>
#include <utility>

#include "kernels/kernels.h"
#include "util/error.h"

namespace moa {

Model Model::load(const std::string& path, FileLoad load) {
  return from_file(gguf::GgufFile::open(path, load));
}

Model Model::from_file(gguf::GgufFile file) {
  Model model;
  model.file_ = std::make_unique<gguf::GgufFile>(std::move(file));
  model.config_ = read_model_config(*model.file_);
  check_model_tensors(*model.file_, model.config_);
  model.weights_ = bind_weights(*model.file_, model.config_);
  model.tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::from_gguf(*model.file_));
  if (model.tokenizer_->n_vocab() != model.config_.n_vocab) {
    // Sampled ids past the tokenizer, or prompt ids past the embedding, would fail mid-run.
    fail("{}: the tokenizer has {} tokens but token_embd.weight has {} rows", model.file_->path(),
         model.tokenizer_->n_vocab(), model.config_.n_vocab);
  }
  return model;
}

int default_thread_count() { return std::max(1, omp_get_num_procs()); }

namespace {

std::vector<BatchPlacement> place_batch(const Model& model, const AttentionCache& cache,
                                        std::span<const SequenceBatch> batch) {
  std::vector<BatchPlacement> placements;
  std::set<int> seen;
  int64_t row = 0;
  for (const SequenceBatch& entry : batch) {
    if (entry.tokens.empty()) fail("forward: sequence {} has no tokens to run", entry.seq);
    if (!seen.insert(entry.seq).second) {
      fail("forward: sequence {} appears twice in one batch", entry.seq);
    }
    cache.check_room(entry.seq, static_cast<int64_t>(entry.tokens.size()));
    if (static_cast<int64_t>(entry.tokens.size()) > cache.max_chunk()) {
      fail(
          "forward: sequence {} brings {} tokens; this cache takes at most {} per call (prefill "
          "in chunks)",
          entry.seq, entry.tokens.size(), cache.max_chunk());
    }
    for (TokenId id : entry.tokens) {
      if (id < 0 || id >= model.config().n_vocab) {
        fail("forward: token id {} is outside the vocabulary (0 .. {})", id,
             model.config().n_vocab - 1);
      }
    }
    const auto n = static_cast<int64_t>(entry.tokens.size());
    placements.push_back({entry.seq, row, n, cache.length(entry.seq)});
    row += n;
  }
  return placements;
}

}  // namespace

ForwardActivations embed_batch(const Model& model, const AttentionCache& cache,
                               std::span<const SequenceBatch> batch) {
  const ModelConfig& c = model.config();
  if (batch.empty()) fail("forward: empty batch");
  ForwardActivations a;
  a.placements = place_batch(model, cache, batch);
  const int64_t n = a.placements.back().row0 + a.placements.back().n;
  auto size = [n](int64_t width) { return static_cast<size_t>(n * width); };
  a.positions.resize(static_cast<size_t>(n));
  a.x.resize(size(c.n_embd));
  a.xb.resize(size(c.n_embd));
  a.q.resize(size(c.q_dim()));
  a.k.resize(size(c.kv_dim()));
  a.v.resize(size(c.kv_dim()));
  a.att.resize(size(c.q_dim()));
  a.proj.resize(size(c.n_embd));
  a.gate.resize(size(c.n_ff));
  a.up.resize(size(c.n_ff));
  a.hidden.resize(size(c.n_ff));
  for (size_t b = 0; b < a.placements.size(); ++b) {
    const BatchPlacement& p = a.placements[b];
    for (int64_t i = 0; i < p.n; ++i) {
      a.positions[static_cast<size_t>(p.row0 + i)] = static_cast<int32_t>(p.pos0 + i);
      embed_token(model.weights().token_embd, batch[b].tokens[static_cast<size_t>(i)],
                  a.x.data() + (p.row0 + i) * c.n_embd);
    }
  }
  return a;
}

kernels::RopeParams rope_params(const ModelConfig& c) {
  kernels::RopeParams rope;
  rope.neox = c.rope_type == RopeType::kNeox;
  rope.n_rot = c.n_rot;
  rope.freq_base = c.rope_freq_base;
  if (c.rope_scaling == RopeScaling::kLinear && c.rope_scale_factor > 0.0f) {
    rope.freq_scale = 1.0f / c.rope_scale_factor;
  }
  if (!c.rope_freq_factors.empty()) rope.freq_factors = c.rope_freq_factors.data();
  return rope;
}

kernels::AttentionShape attention_shape(const ModelConfig& c) {
  // Opt-in: on the Sapphire Rapids VM measured, BF16 products ran decode attention slower than
  // F32 (docs/dense-engine.md); the kernels use them only over F16 caches with AVX512-BF16.
  static const bool bf16 = [] {
    const char* value = std::getenv("MOA_BF16_ATTENTION");
    return value != nullptr && std::string_view(value) == "1";
  }();
  return {c.n_head, c.n_head_kv, c.head_dim, 1.0f / std::sqrt(static_cast<float>(c.head_dim)),
          bf16};
}

void attention_block(const Model& model, int64_t layer, AttentionCache& cache,
                     ForwardActivations& a, int n_threads) {
  const ModelConfig& c = model.config();
  const LayerWeights& w = model.weights().layers[static_cast<size_t>(layer)];
  const int64_t n = a.n_rows();
  kernels::rms_norm(a.x.data(), w.attn_norm.data(), c.n_embd, n, c.rms_eps, a.xb.data());
  const kernels::Projection qkv[] = {
      {w.attn_q, a.q.data()}, {w.attn_k, a.k.data()}, {w.attn_v, a.v.data()}};
  kernels::matmul_shared_input(qkv, a.xb.data(), n, n_threads);
  if (c.has_qkv_bias) {
    kernels::add_bias(w.bias_q.data(), c.q_dim(), n, a.q.data());
    kernels::add_bias(w.bias_k.data(), c.kv_dim(), n, a.k.data());
    kernels::add_bias(w.bias_v.data(), c.kv_dim(), n, a.v.data());
  }
  const kernels::RopeParams rope = rope_params(c);
  kernels::rope(a.q.data(), n, c.n_head, c.head_dim, a.positions.data(), rope);
  kernels::rope(a.k.data(), n, c.n_head_kv, c.head_dim, a.positions.data(), rope);

  const kernels::AttentionShape shape = attention_shape(c);
  for (const BatchPlacement& p : a.placements) {
    cache.attend(layer, p.seq, p.pos0, p.n, shape, a.q.data() + p.row0 * c.q_dim(),
                 a.k.data() + p.row0 * c.kv_dim(), a.v.data() + p.row0 * c.kv_dim(),
                 a.att.data() + p.row0 * c.q_dim(), n_threads);
  }
  kernels::matmul(w.attn_output, a.att.data(), n, a.proj.data(), n_threads);
  kernels::add_inplace(a.x.data(), a.proj.data(), n * c.n_embd);
}

void ffn_gate_up(const Model& model, int64_t layer, ForwardActivations& a, int n_threads) {
  const ModelConfig& c = model.config();
  const LayerWeights& w = model.weights().layers[static_cast<size_t>(layer)];
  kernels::rms_norm(a.x.data(), w.ffn_norm.data(), c.n_embd, a.n_rows(), c.rms_eps, a.xb.data());
  const kernels::Projection gate_up[] = {{w.ffn_gate, a.gate.data()}, {w.ffn_up, a.up.data()}};
  kernels::matmul_shared_input(gate_up, a.xb.data(), a.n_rows(), n_threads);
}

void ffn_block(const Model& model, int64_t layer, ForwardActivations& a, int n_threads) {
  const ModelConfig& c = model.config();
  const LayerWeights& w = model.weights().layers[static_cast<size_t>(layer)];
  const int64_t n = a.n_rows();
  ffn_gate_up(model, layer, a, n_threads);
  kernels::swiglu(a.gate.data(), a.up.data(), n * c.n_ff, a.hidden.data());
  kernels::matmul(w.ffn_down, a.hidden.data(), n, a.proj.data(), n_threads);
  kernels::add_inplace(a.x.data(), a.proj.data(), n * c.n_embd);
}

Logits logits_for_rows(const Model& model, const ForwardActivations& a,
                       std::span<const int64_t> rows, int n_threads) {
  const ModelConfig& c = model.config();
  const auto n_out = static_cast<int64_t>(rows.size());
  std::vector<float> selected(static_cast<size_t>(n_out * c.n_embd));
  for (int64_t i = 0; i < n_out; ++i) {
    std::copy_n(a.x.data() + rows[static_cast<size_t>(i)] * c.n_embd, c.n_embd,
                selected.data() + i * c.n_embd);
  }
  std::vector<float> normed(selected.size());
  kernels::rms_norm(selected.data(), model.weights().output_norm.data(), c.n_embd, n_out, c.rms_eps,
                    normed.data());
  Logits logits;
  logits.n_vocab = c.n_vocab;
  logits.data.resize(static_cast<size_t>(n_out * c.n_vocab));
  kernels::matmul(model.weights().output, normed.data(), n_out, logits.data.data(), n_threads);
  return logits;
}

Logits forward(const Model& model, AttentionCache& cache, std::span<const SequenceBatch> batch,
               LogitsMode mode, int n_threads) {
  n_threads = std::max(1, n_threads);
  ForwardActivations a = embed_batch(model, cache, batch);
  for (int64_t layer = 0; layer < model.config().n_layer; ++layer) {
    attention_block(model, layer, cache, a, n_threads);
    ffn_block(model, layer, a, n_threads);
  }
  std::vector<int64_t> rows;
  for (const BatchPlacement& p : a.placements) {
    cache.set_length(p.seq, p.pos0 + p.n);
    if (mode == LogitsMode::kAll) {
      for (int64_t i = 0; i < p.n; ++i) rows.push_back(p.row0 + i);
    } else {
      rows.push_back(p.row0 + p.n - 1);
    }
  }
  return logits_for_rows(model, a, rows, n_threads);
}

Logits forward_tokens(const Model& model, AttentionCache& cache, int seq,
                      std::span<const TokenId> tokens, LogitsMode mode, int n_threads) {
  const SequenceBatch entry{seq, tokens};
  return forward(model, cache, std::span<const SequenceBatch>(&entry, 1), mode, n_threads);
}

Logits decode_tokens(const Model& model, AttentionCache& cache, std::span<const int> seqs,
                     std::span<const TokenId> tokens, int n_threads) {
  if (seqs.size() != tokens.size()) {
    fail("decode: {} sequences but {} tokens", seqs.size(), tokens.size());
  }
  std::vector<SequenceBatch> batch;
  for (size_t i = 0; i < seqs.size(); ++i) batch.push_back({seqs[i], tokens.subspan(i, 1)});
  return forward(model, cache, batch, LogitsMode::kLast, n_threads);
}

}  // namespace moa
