// The profiler's backward against the outside world: (a) its input-embedding gradient against
// central finite differences of the double-precision reference forward, end to end; (b) its
// per-head influence against the loss change measured by masking one head's band for real, on a
// random model and on the trained stories260K.
#include "profile/sample_backward.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>

#include "engine/random_model.h"
#include "engine/reference_forward.h"
#include "support/assets.h"

namespace moa {
namespace {

constexpr int kThreads = 2;

Model random_model(const RandomModelSpec& spec) {
  return Model::from_file(gguf::GgufFile::parse(build_random_model(spec).serialize(), "random"));
}

std::vector<TokenId> some_tokens(int64_t n, int64_t n_vocab, int salt) {
  std::vector<TokenId> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back(static_cast<TokenId>((i * 37 + salt) % n_vocab));
  return ids;
}

// Mean cross-entropy of the answer rows of the reference forward's logits, run from the
// residual stream x entering `first_block` (0: the embeddings).
double reference_loss(const Model& model, const std::vector<std::vector<double>>& x,
                      std::span<const TokenId> answer, int64_t first_block = 0,
                      bool round_activations = true) {
  const auto logits = test::reference_forward_embedded(model.file(), model.config(), x, first_block,
                                                       round_activations);
  const size_t first = logits.size() - answer.size();
  double loss = 0.0;
  for (size_t t = 0; t < answer.size(); ++t) {
    const std::vector<double>& row = logits[first + t];
    const double m = *std::max_element(row.begin(), row.end());
    double sum = 0.0;
    for (double l : row) sum += std::exp(l - m);
    loss += std::log(sum) + m - row[static_cast<size_t>(answer[t])];
  }
  return loss / static_cast<double>(answer.size());
}

TEST(SampleBackward, InputGradientMatchesFiniteDifferencesOfTheReference) {
  RandomModelSpec spec;
  spec.n_layer = 2;
  const Model model = random_model(spec);
  const ModelConfig& c = model.config();
  const std::vector<TokenId> prompt = some_tokens(20, c.n_vocab, 3);
  const std::vector<TokenId> answer = some_tokens(5, c.n_vocab, 11);
  const SampleInfluence s = backward_sample(model, prompt, answer, {2, kThreads});
  ASSERT_EQ(s.n_tokens, 24);

  std::vector<TokenId> tokens = prompt;
  tokens.insert(tokens.end(), answer.begin(), answer.end() - 1);
  const test::RefMatrix embd = test::ref_tensor(model.file(), "token_embd.weight");
  std::vector<std::vector<double>> x;
  for (TokenId t : tokens) x.emplace_back(embd.row(t), embd.row(t) + c.n_embd);
  EXPECT_NEAR(reference_loss(model, x, answer), s.loss, 1e-4);

  const double max_grad =
      std::abs(*std::max_element(s.d_input.begin(), s.d_input.end(),
                                 [](float a, float b) { return std::abs(a) < std::abs(b); }));
  ASSERT_GT(max_grad, 0.0);
  const double h = 1e-5;
  for (int probe = 0; probe < 24; ++probe) {
    const size_t t = static_cast<size_t>((probe * 7) % s.n_tokens);
    const size_t i = static_cast<size_t>((probe * 13 + 5) % c.n_embd);
    std::vector<std::vector<double>> plus = x, minus = x;
    plus[t][i] += h;
    minus[t][i] -= h;
    const double numeric =
        (reference_loss(model, plus, answer) - reference_loss(model, minus, answer)) / (2 * h);
    EXPECT_NEAR(s.d_input[t * static_cast<size_t>(c.n_embd) + i], numeric, 2e-3 * max_grad)
        << "row " << t << " column " << i;
  }
}

// Attention over one whole sequence with one KV head's band cut beyond `span` (keys j >= sinks
// with i - j >= span are masked, rows renormalised), exact in double for that head.
class MaskedAttention final : public AttentionCache {
 public:
  MaskedAttention(int64_t layer, int64_t kv_head, int64_t span, int64_t sinks)
      : layer_(layer), kv_head_(kv_head), span_(span), sinks_(sinks) {}
  int n_seq() const override { return 1; }
  int64_t n_ctx() const override { return 1 << 20; }
  uint64_t bytes() const override { return 0; }
  int64_t length(int) const override { return 0; }
  void check_room(int, int64_t) const override {}
  int64_t max_chunk() const override { return 1 << 20; }
  void set_length(int, int64_t) override {}
  void attend(int64_t layer, int, int64_t, int64_t n, const kernels::AttentionShape& shape,
              const float* q, const float* k, const float* v, float* out, int threads) override {
    std::vector<float> lse(static_cast<size_t>(n * shape.n_head));
    kernels::attention_forward_with_stats(shape, {q, k, v, n}, out, lse.data(), threads);
    if (layer != layer_) return;
    const int64_t group = shape.n_head / shape.n_head_kv, hd = shape.head_dim;
    const int64_t kv_dim = shape.n_head_kv * hd, q_dim = shape.n_head * hd;
    for (int64_t h = kv_head_ * group; h < (kv_head_ + 1) * group; ++h) {
      for (int64_t i = 0; i < n; ++i) {
        std::vector<double> w(static_cast<size_t>(i + 1), 0.0);
        double m = -INFINITY, sum = 0.0;
        for (int64_t j = 0; j <= i; ++j) {
          if (j >= sinks_ && i - j >= span_) continue;
          double dot = 0.0;
          for (int64_t d = 0; d < hd; ++d)
            dot += double{q[i * q_dim + h * hd + d]} * k[j * kv_dim + kv_head_ * hd + d];
          w[static_cast<size_t>(j)] = dot * shape.scale;
          m = std::max(m, w[static_cast<size_t>(j)]);
        }
        for (int64_t j = 0; j <= i; ++j) {
          const bool kept = j < sinks_ || i - j < span_;
          w[static_cast<size_t>(j)] = kept ? std::exp(w[static_cast<size_t>(j)] - m) : 0.0;
          sum += w[static_cast<size_t>(j)];
        }
        for (int64_t d = 0; d < hd; ++d) {
          double o = 0.0;
          for (int64_t j = 0; j <= i; ++j)
            o += w[static_cast<size_t>(j)] * v[j * kv_dim + kv_head_ * hd + d];
          out[i * q_dim + h * hd + d] = static_cast<float>(o / sum);
        }
      }
    }
  }

 private:
  int64_t layer_, kv_head_, span_, sinks_;
};

// Per block: dL/d(residual stream entering each block) from the profiler's backward against
// central differences of the double reference run from that block on (RMSNorm, RoPE, attention,
// SwiGLU and the projections), with the projections stored in each weight type. The reference
// leaves out the kernels' rounding of activations for quantized weights (steps that differences
// cannot see); the tolerance allows for that rounding in the backward's recomputed forward.
TEST(SampleBackward, EveryBlockGradientMatchesFiniteDifferencesOnEveryWeightType) {
  struct Case {
    gguf::TensorType type;
    int64_t width;
    double tolerance;  // relative to the block's largest gradient
  };
  const Case cases[] = {{gguf::TensorType::kF32, 64, 2e-3},
                        {gguf::TensorType::kF16, 64, 2e-3},
                        {gguf::TensorType::kQ8_0, 64, 2e-2},
                        {gguf::TensorType::kQ4_K, 256, 2e-2}};
  for (const Case& k : cases) {
    RandomModelSpec spec;
    spec.weight_type = k.type;
    spec.n_embd = k.width;
    spec.n_ff = k.width == 64 ? 96 : 256;
    const Model model = random_model(spec);
    const ModelConfig& c = model.config();
    const std::vector<TokenId> prompt = some_tokens(12, c.n_vocab, 3);
    const std::vector<TokenId> answer = some_tokens(4, c.n_vocab, 11);
    std::vector<std::vector<float>> d_blocks;
    BackwardWeights exact(model, true);
    const SampleInfluence s =
        backward_sample(model, prompt, answer, {2, kThreads}, &exact, &d_blocks);
    ASSERT_EQ(d_blocks.size(), static_cast<size_t>(2 * c.n_layer));

    // The residual stream entering each block, from the forward's own blocks.
    std::vector<TokenId> tokens = prompt;
    tokens.insert(tokens.end(), answer.begin(), answer.end() - 1);
    MaskedAttention dense(-1, 0, 1 << 20, 0);
    const SequenceBatch batch{0, tokens};
    ForwardActivations a = embed_batch(model, dense, std::span<const SequenceBatch>(&batch, 1));
    for (int64_t block = 0; block < 2 * c.n_layer; ++block) {
      std::vector<std::vector<double>> x;
      for (int64_t t = 0; t < s.n_tokens; ++t) {
        x.emplace_back(a.x.begin() + t * c.n_embd, a.x.begin() + (t + 1) * c.n_embd);
      }
      const std::vector<float>& grad = d_blocks[static_cast<size_t>(block)];
      double max_grad = 0.0;
      for (float g : grad) max_grad = std::max(max_grad, std::abs(double{g}));
      ASSERT_GT(max_grad, 0.0) << "block " << block;
      const double h = 1e-4;
      for (int probe = 0; probe < 6; ++probe) {
        const auto t = static_cast<size_t>((probe * 5 + block) % s.n_tokens);
        const auto i = static_cast<size_t>((probe * 13 + 7 * block) % c.n_embd);
        std::vector<std::vector<double>> plus = x, minus = x;
        plus[t][i] += h;
        minus[t][i] -= h;
        const double numeric = (reference_loss(model, plus, answer, block, false) -
                                reference_loss(model, minus, answer, block, false)) /
                               (2 * h);
        EXPECT_NEAR(grad[t * static_cast<size_t>(c.n_embd) + i], numeric, k.tolerance * max_grad)
            << gguf::tensor_type_name(static_cast<uint32_t>(k.type)) << " block " << block
            << " row " << t << " column " << i;
      }
      if (block % 2 == 0) {
        attention_block(model, block / 2, dense, a, kThreads);
      } else {
        ffn_block(model, block / 2, a, kThreads);
      }
    }
  }
}

double masked_loss(const Model& model, std::span<const TokenId> prompt,
                   std::span<const TokenId> answer, MaskedAttention& cache) {
  std::vector<TokenId> tokens(prompt.begin(), prompt.end());
  tokens.insert(tokens.end(), answer.begin(), answer.end() - 1);
  const Logits all = forward_tokens(model, cache, 0, tokens, LogitsMode::kAll, kThreads);
  Logits rows;
  rows.n_vocab = all.n_vocab;
  rows.data.assign(all.data.end() - static_cast<int64_t>(answer.size()) * all.n_vocab,
                   all.data.end());
  return answer_cross_entropy(rows, answer, nullptr);
}

std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size(); ++i) r[order[i]] = static_cast<double>(i);
  return r;
}

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double n = static_cast<double>(a.size());
  double d2 = 0.0;
  for (size_t i = 0; i < a.size(); ++i) d2 += (ra[i] - rb[i]) * (ra[i] - rb[i]);
  return 1.0 - 6.0 * d2 / (n * (n * n - 1.0));
}

// Masks each head's band beyond `span` for real and compares the loss change with the
// profile's first-order prediction for that band (the suffix sum of the signed E): the large
// real effects must have the predicted sign, and the Spearman correlation over heads of
// predicted and measured changes is returned.
double influence_vs_masking(const Model& model, std::span<const TokenId> prompt,
                            std::span<const TokenId> answer, int64_t span, int64_t sinks) {
  const ModelConfig& c = model.config();
  const SampleInfluence s = backward_sample(model, prompt, answer, {sinks, kThreads});
  MaskedAttention dense(-1, 0, 1 << 20, sinks);
  const double base = masked_loss(model, prompt, answer, dense);
  EXPECT_NEAR(base, s.loss, 1e-4);
  std::vector<double> predicted, measured;
  for (int64_t layer = 0; layer < c.n_layer; ++layer) {
    for (int64_t g = 0; g < c.n_head_kv; ++g) {
      MaskedAttention masked(layer, g, span, sinks);
      predicted.push_back(s.layers[static_cast<size_t>(layer)].signed_tail_sum(g, span));
      measured.push_back(masked_loss(model, prompt, answer, masked) - base);
    }
  }
  const double rho = spearman(predicted, measured);
  std::printf("span %lld: spearman over %zu heads: %.3f\n", static_cast<long long>(span),
              predicted.size(), rho);
  // Large effects: a real change of a quarter of the largest one or more. (A head whose real
  // change is small next to the others' can be dominated by second-order terms, which a first-
  // order prediction does not claim to capture: see docs/profile.md.)
  double largest = 0.0;
  for (double m : measured) largest = std::max(largest, std::abs(m));
  int large = 0;
  for (size_t i = 0; i < predicted.size(); ++i) {
    std::printf("  head %zu: predicted %+.4g measured %+.4g\n", i, predicted[i], measured[i]);
    if (std::abs(measured[i]) >= 0.25 * largest) {
      ++large;
      EXPECT_GT(predicted[i] * measured[i], 0.0)
          << "head " << i << ": predicted " << predicted[i] << ", measured " << measured[i];
    }
  }
  EXPECT_GE(large, 1);
  return rho;
}

TEST(SampleBackward, InfluencePredictsMaskingOnARandomModel) {
  RandomModelSpec spec;
  spec.n_layer = 4;
  spec.n_head = 8;
  spec.n_head_kv = 4;
  spec.n_embd = 128;
  const Model model = random_model(spec);
  const std::vector<TokenId> prompt = some_tokens(120, model.config().n_vocab, 5);
  const std::vector<TokenId> answer = some_tokens(8, model.config().n_vocab, 17);
  // Measured: Spearman 0.98 at span 96 (0.95 at 64) with the signed E; the |E| it replaced
  // reached 0.61 against the size of the change.
  EXPECT_GE(influence_vs_masking(model, prompt, answer, 96, 4), 0.7);
}

TEST(SampleBackward, InfluencePredictsMaskingOnStories260K) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = Model::load(path, FileLoad::kMap);
  const std::vector<TokenId> tokens = model.tokenizer().encode(
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park with her friend Tom. One day, Lily found a big red ball under a tree. She gave the "
      "ball to Tom and they played together all day. When the sun went down, Lily said goodbye "
      "to Tom and went home. Her mom gave her a hug. Lily was happy because she had a good day "
      "with her friend Tom and the big red ball.",
      true, false);
  ASSERT_GT(tokens.size(), 60u);
  const std::span<const TokenId> all(tokens);
  const auto n_answer = 12;
  // Spans 32 and 64 of ~110 tokens (measured Spearman 0.71, 0.76). At span 16 the cut moves so
  // much of the last layer's attention that second-order terms (the cross-entropy is convex in
  // that layer's output) reorder the small effects: 0.62 there.
  for (int64_t span : {32, 64}) {
    EXPECT_GE(
        influence_vs_masking(model, all.first(all.size() - n_answer), all.last(n_answer), span, 4),
        0.7)
        << "span " << span;
  }
}

}  // namespace
}  // namespace moa
