// The profiler's backward pass (see sample_backward.h), in the order of docs/backward-kernels.md:
// output head on the answer rows only, final norm, then per layer top down the FFN and the
// attention block's gradients with residuals. What the forward did not keep of a layer is
// recomputed from the layer's input through engine/forward.h's attention_block (attention run by
// a cache that keeps the row statistics, lse, attention_backward needs) and, of the FFN, only
// gate and up.
#include "profile/sample_backward.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "kernels/backward.h"
#include "util/error.h"

namespace moa {
namespace {

// Attention over one whole sequence at positions 0..n-1 (the profiler's only use), through
// attention_forward_with_stats, keeping the lse of the last layer it ran.
class StatsAttention final : public AttentionCache {
 public:
  explicit StatsAttention(int64_t n_ctx) : n_ctx_(n_ctx) {}
  int n_seq() const override { return 1; }
  int64_t n_ctx() const override { return n_ctx_; }
  uint64_t bytes() const override { return heap_bytes(lse_); }
  int64_t length(int) const override { return 0; }
  void check_room(int seq, int64_t n_new) const override {
    check_context_room(seq, 0, n_new, n_ctx_, "the model's context");
  }
  int64_t max_chunk() const override { return n_ctx_; }
  void attend(int64_t, int seq, int64_t pos, int64_t n_tokens, const kernels::AttentionShape& shape,
              const float* q, const float* k, const float* v, float* out, int n_threads) override {
    if (seq != 0 || pos != 0) fail("profile attention: runs one sequence from position 0 only");
    lse_.resize(static_cast<size_t>(n_tokens * shape.n_head));
    kernels::attention_forward_with_stats(shape, {q, k, v, n_tokens}, out, lse_.data(), n_threads);
  }
  void set_length(int, int64_t) override {}
  const std::vector<float>& lse() const { return lse_; }

 private:
  int64_t n_ctx_;
  std::vector<float> lse_;
};

// dx = W^T dy for several projections sharing one input, summed.
void project_back(BackwardWeights& weights, std::span<const kernels::WeightMatrix* const> w,
                  std::span<const float* const> dy, int64_t n, int64_t width, float* dx,
                  int n_threads) {
  std::vector<float> part(static_cast<size_t>(n * width));
  std::fill_n(dx, n * width, 0.0f);
  for (size_t i = 0; i < w.size(); ++i) {
    weights.multiply(*w[i], dy[i], n, part.data(), n_threads);
    kernels::add_inplace(dx, part.data(), n * width);
  }
}

// What the forward kept of one layer; `attention` and `ffn` say which parts are filled.
struct LayerTape {
  std::vector<float> input;  // the residual stream entering the layer, always kept
  bool attention = false;
  std::vector<float> q, k, v, att, lse, ffn_input;
  bool ffn = false;
  std::vector<float> gate, up;
};

// Which layers keep which parts under `budget` bytes: attention for as many layers as fit, then
// FFNs with what is left.
void plan_tape(const ModelConfig& c, int64_t n, int64_t budget, std::vector<LayerTape>& tape) {
  const KeptActivationBytes per_position = kept_activation_bytes(c);
  const int64_t attention = per_position.attention * n, ffn = per_position.ffn * n;
  budget = std::max<int64_t>(budget, 0);
  for (LayerTape& layer : tape) {
    layer.attention = attention <= budget;
    if (layer.attention) budget -= attention;
  }
  for (LayerTape& layer : tape) {
    layer.ffn = layer.attention && ffn <= budget;
    if (layer.ffn) budget -= ffn;
  }
}

// d_norm_in += rms_norm_backward(x, weight, dy): a norm's gradient joins the residual's.
void add_norm_backward(const float* x, const std::vector<float>& weight, const float* dy, int64_t n,
                       int64_t width, float eps, float* dx) {
  std::vector<float> part(static_cast<size_t>(n * width));
  kernels::rms_norm_backward(x, weight.data(), dy, width, n, eps, part.data());
  kernels::add_inplace(dx, part.data(), n * width);
}

}  // namespace

double answer_cross_entropy(const Logits& logits, std::span<const TokenId> targets,
                            std::vector<float>* d_logits) {
  const int64_t rows = logits.n_rows();
  if (rows != static_cast<int64_t>(targets.size()) || rows == 0) {
    fail("cross-entropy: {} logits rows for {} targets (expected equal, non-zero)", rows,
         targets.size());
  }
  if (d_logits != nullptr) d_logits->assign(logits.data.size(), 0.0f);
  double loss = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const std::span<const float> row = logits.row(r);
    const float max_logit = *std::max_element(row.begin(), row.end());
    double sum = 0.0;
    for (float l : row) sum += std::exp(static_cast<double>(l - max_logit));
    const TokenId target = targets[static_cast<size_t>(r)];
    loss += std::log(sum) - static_cast<double>(row[static_cast<size_t>(target)] - max_logit);
    if (d_logits == nullptr) continue;
    float* d = d_logits->data() + r * logits.n_vocab;
    for (int64_t j = 0; j < logits.n_vocab; ++j) {
      d[j] = static_cast<float>(
          std::exp(static_cast<double>(row[static_cast<size_t>(j)] - max_logit)) / sum /
          static_cast<double>(rows));
    }
    d[target] -= 1.0f / static_cast<float>(rows);
  }
  return loss / static_cast<double>(rows);
}

KeptActivationBytes kept_activation_bytes(const ModelConfig& c) {
  constexpr auto kFloat = static_cast<int64_t>(sizeof(float));
  return {(2 * c.q_dim() + 2 * c.kv_dim() + c.n_head + c.n_embd) * kFloat, 2 * c.n_ff * kFloat};
}

SampleInfluence backward_sample(const Model& model, std::span<const TokenId> prompt,
                                std::span<const TokenId> answer, const BackwardOptions& options,
                                BackwardWeights* weights,
                                std::vector<std::vector<float>>* d_block_inputs) {
  const ModelConfig& c = model.config();
  if (answer.empty()) fail("profile: the sample has no answer tokens (nothing to take a loss of)");
  if (prompt.empty()) fail("profile: the sample has no prompt tokens");
  if (options.sinks < 0) fail("profile: sinks {} is negative (expected >= 0)", options.sinks);
  const int n_threads = std::max(1, options.n_threads);
  std::optional<BackwardWeights> own_weights;
  if (weights == nullptr) own_weights.emplace(model, false);
  BackwardWeights& transposes = weights != nullptr ? *weights : *own_weights;
  std::vector<TokenId> tokens(prompt.begin(), prompt.end());
  tokens.insert(tokens.end(), answer.begin(), answer.end() - 1);
  const auto n = static_cast<int64_t>(tokens.size());
  const auto n_answer = static_cast<int64_t>(answer.size());

  // Forward, keeping each layer's input and what the budget allows.
  StatsAttention attention(c.n_ctx_train);
  const SequenceBatch batch{0, tokens};
  ForwardActivations a = embed_batch(model, attention, std::span<const SequenceBatch>(&batch, 1));
  std::vector<LayerTape> tape(static_cast<size_t>(c.n_layer));
  plan_tape(c, n, options.keep_bytes, tape);
  SampleInfluence result;
  for (int64_t layer = 0; layer < c.n_layer; ++layer) {
    LayerTape& kept = tape[static_cast<size_t>(layer)];
    result.kept_attention += kept.attention ? 1 : 0;
    result.kept_ffn += kept.ffn ? 1 : 0;
    kept.input = a.x;
    attention_block(model, layer, attention, a, n_threads);
    if (kept.attention) {
      kept.q = a.q;
      kept.k = a.k;
      kept.v = a.v;
      kept.att = a.att;
      kept.lse = attention.lse();
      kept.ffn_input = a.x;
    }
    ffn_block(model, layer, a, n_threads);
    if (kept.ffn) {
      kept.gate = a.gate;
      kept.up = a.up;
    }
  }

  // Loss on the rows that predict answer tokens, and its gradient back through the head.
  std::vector<int64_t> rows;
  for (int64_t t = 0; t < n_answer; ++t) rows.push_back(n - n_answer + t);
  const Logits logits = logits_for_rows(model, a, rows, n_threads);
  result.n_tokens = n;
  std::vector<float> d_logits;
  result.loss = answer_cross_entropy(logits, answer, &d_logits);
  std::vector<float> d_normed(static_cast<size_t>(n_answer * c.n_embd));
  // The head sees a few answer rows: a transpose of it would cost more than the product.
  kernels::matmul_transposed(model.weights().output, d_logits.data(), n_answer, d_normed.data(),
                             n_threads);
  std::vector<float> dx(a.x.size(), 0.0f);  // dL/d(residual), rows before the answer stay 0
  float* d_answer_rows = dx.data() + rows.front() * c.n_embd;
  kernels::rms_norm_backward(a.x.data() + rows.front() * c.n_embd,
                             model.weights().output_norm.data(), d_normed.data(), c.n_embd,
                             n_answer, c.rms_eps, d_answer_rows);

  std::vector<float> d_hidden(a.hidden.size()), d_gate(a.gate.size()), d_up(a.up.size());
  std::vector<float> d_xb(a.xb.size()), d_att(a.att.size());
  std::vector<float> dq(a.q.size()), dk(a.k.size()), dv(a.v.size()), ffn_input;
  const kernels::RopeParams rope = rope_params(c);
  result.layers.resize(static_cast<size_t>(c.n_layer));
  if (d_block_inputs != nullptr) d_block_inputs->assign(static_cast<size_t>(2 * c.n_layer), {});
  for (int64_t layer = c.n_layer - 1; layer >= 0; --layer) {
    const LayerWeights& w = model.weights().layers[static_cast<size_t>(layer)];
    LayerTape& kept = tape[static_cast<size_t>(layer)];
    const float* lse = nullptr;
    if (kept.attention) {
      a.q.swap(kept.q);
      a.k.swap(kept.k);
      a.v.swap(kept.v);
      a.att.swap(kept.att);
      lse = kept.lse.data();
      ffn_input.swap(kept.ffn_input);
    } else {
      a.x = kept.input;
      attention_block(model, layer, attention, a, n_threads);
      lse = attention.lse().data();
      ffn_input = a.x;
    }
    if (kept.ffn) {
      a.gate.swap(kept.gate);
      a.up.swap(kept.up);
    } else {
      // Gate and up only: ffn_down and the residual add, a quarter of the matmuls, are not redone.
      if (kept.attention) a.x = ffn_input;  // a recomputed attention block left it in a.x
      ffn_gate_up(model, layer, a, n_threads);
    }

    // FFN: dx is dL/d(layer output); the residual passes it to the FFN input unchanged.
    transposes.multiply(w.ffn_down, dx.data(), n, d_hidden.data(), n_threads);
    kernels::swiglu_backward(a.gate.data(), a.up.data(), d_hidden.data(), n * c.n_ff, d_gate.data(),
                             d_up.data());
    const kernels::WeightMatrix* gate_up[] = {&w.ffn_gate, &w.ffn_up};
    const float* d_gate_up[] = {d_gate.data(), d_up.data()};
    project_back(transposes, gate_up, d_gate_up, n, c.n_embd, d_xb.data(), n_threads);
    add_norm_backward(ffn_input.data(), w.ffn_norm, d_xb.data(), n, c.n_embd, c.rms_eps, dx.data());
    if (d_block_inputs != nullptr) (*d_block_inputs)[static_cast<size_t>(2 * layer + 1)] = dx;

    // Attention, with the influence histogram.
    transposes.multiply(w.attn_output, dx.data(), n, d_att.data(), n_threads);
    kernels::AttentionGradients grads{dq.data(), dk.data(), dv.data(),
                                      &result.layers[static_cast<size_t>(layer)], options.sinks};
    kernels::attention_backward(attention_shape(c), {a.q.data(), a.k.data(), a.v.data(), n},
                                a.att.data(), lse, d_att.data(), grads, n_threads);
    kernels::rope_backward(dq.data(), n, c.n_head, c.head_dim, a.positions.data(), rope);
    kernels::rope_backward(dk.data(), n, c.n_head_kv, c.head_dim, a.positions.data(), rope);
    const kernels::WeightMatrix* qkv[] = {&w.attn_q, &w.attn_k, &w.attn_v};
    const float* d_qkv[] = {dq.data(), dk.data(), dv.data()};
    project_back(transposes, qkv, d_qkv, n, c.n_embd, d_xb.data(), n_threads);
    add_norm_backward(kept.input.data(), w.attn_norm, d_xb.data(), n, c.n_embd, c.rms_eps,
                      dx.data());
    if (d_block_inputs != nullptr) (*d_block_inputs)[static_cast<size_t>(2 * layer)] = dx;
    kept = LayerTape{};  // its memory goes back before the next layer down
    transposes.release();
  }
  result.d_input = std::move(dx);
  return result;
}

}  // namespace moa
