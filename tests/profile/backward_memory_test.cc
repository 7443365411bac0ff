// The profiler's backward under its two speed-ups: activations kept by the forward (any byte
// budget gives the results of recomputing every layer, bit for bit), and the weights' Q8_0
// transposes multiplied by the int8 GEMM (close to the exact F32-panel products).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "engine/random_model.h"
#include "profile/profiler.h"
#include "profile/sample_backward.h"
#include "support/test_inputs.h"

namespace moa {
namespace {

Model model_of(gguf::TensorType type, int64_t width) {
  RandomModelSpec spec;
  spec.weight_type = type;
  spec.n_layer = 3;
  spec.n_head = 8;
  spec.n_head_kv = 4;
  spec.n_embd = width;
  spec.n_ff = width == 64 ? 96 : 256;
  return Model::from_file(gguf::GgufFile::parse(build_random_model(spec).serialize(), "random"));
}

void expect_same(const SampleInfluence& a, const SampleInfluence& b, const char* what) {
  EXPECT_EQ(a.loss, b.loss) << what;
  EXPECT_EQ(a.d_input, b.d_input) << what;
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t l = 0; l < a.layers.size(); ++l) {
    EXPECT_EQ(a.layers[l].by_distance, b.layers[l].by_distance) << what << " layer " << l;
    EXPECT_EQ(a.layers[l].signed_sink, b.layers[l].signed_sink) << what << " layer " << l;
  }
}

TEST(BackwardMemory, KeptActivationsGiveTheResultsOfRecomputingBitForBit) {
  const Model model = model_of(gguf::TensorType::kQ8_0, 64);
  const ModelConfig& c = model.config();
  const std::vector<TokenId> prompt = test::some_tokens(40, c.n_vocab, 3);
  const std::vector<TokenId> answer = test::some_tokens(6, c.n_vocab, 9);
  const int64_t n = 45;
  const KeptActivationBytes per = kept_activation_bytes(c);
  const SampleInfluence all = backward_sample(model, prompt, answer, {2, 2});
  const SampleInfluence none = backward_sample(model, prompt, answer, {2, 2, 0});
  // Attention of every layer, the FFN of one: the mixed plan.
  const SampleInfluence mixed =
      backward_sample(model, prompt, answer, {2, 2, (per.attention * c.n_layer + per.ffn) * n});
  // Attention of two layers only.
  const SampleInfluence some =
      backward_sample(model, prompt, answer, {2, 2, per.attention * n * 2});
  expect_same(all, none, "recompute every layer");
  expect_same(all, mixed, "attention kept, one FFN");
  expect_same(all, some, "two attention blocks kept");
}

// The transposes' roundings move the input gradient by ~1% of its size and the influence
// each head's tail holds by a few percent; measured here (printed) and bounded.
TEST(BackwardMemory, Q8_0TransposesStayCloseToTheExactBackward) {
  for (const auto& [type, width] : {std::pair{gguf::TensorType::kQ8_0, int64_t{64}},
                                    std::pair{gguf::TensorType::kQ4_K, int64_t{256}}}) {
    const Model model = model_of(type, width);
    const ModelConfig& c = model.config();
    BackwardWeights exact(model, true), fast(model, false);
    fast.keep_all(2);
    if (fast.bytes_if_kept() == 0) {
      GTEST_SKIP() << "no int8 GEMM in this build/CPU: the backward has no Q8_0 transposes";
    }
    const std::vector<TokenId> prompt = test::some_tokens(90, c.n_vocab, 5);
    const std::vector<TokenId> answer = test::some_tokens(6, c.n_vocab, 13);
    const SampleInfluence want = backward_sample(model, prompt, answer, {4, 2}, &exact);
    const SampleInfluence got = backward_sample(model, prompt, answer, {4, 2}, &fast);
    EXPECT_EQ(fast.bytes_held(), fast.bytes_if_kept());  // kept for the next sample
    EXPECT_NEAR(got.loss, want.loss, 1e-3 * std::abs(want.loss));
    const double d_input = test::max_abs_diff(got.d_input, want.d_input);
    double scale = 0.0;
    for (float v : want.d_input) scale = std::max(scale, std::abs(double{v}));
    double worst_tail = 0.0;
    for (int64_t l = 0; l < c.n_layer; ++l) {
      for (int64_t g = 0; g < c.n_head_kv; ++g) {
        for (int64_t first : {int64_t{1}, int64_t{8}, int64_t{32}}) {
          const double a = got.layers[static_cast<size_t>(l)].tail_sum(g, first);
          const double b = want.layers[static_cast<size_t>(l)].tail_sum(g, first);
          worst_tail = std::max(worst_tail, std::abs(a - b) / b);
        }
      }
    }
    std::printf("%s: input gradient off by %.3g of its size; tail sums by up to %.3g\n",
                gguf::tensor_type_name(static_cast<uint32_t>(type)), d_input / scale, worst_tail);
    EXPECT_LE(d_input / scale, 3e-2);
    EXPECT_LE(worst_tail, 5e-2);
  }
}

TEST(BackwardMemory, PlanPutsActivationsFirstAndKeepsTransposesWhenBothFit) {
  const Model model = model_of(gguf::TensorType::kQ8_0, 64);
  const ModelConfig& c = model.config();
  const KeptActivationBytes per = kept_activation_bytes(c);
  const int64_t all = (per.attention + per.ffn) * 100 * c.n_layer;
  const BackwardMemory roomy = plan_backward_memory(model, 3000, 100, all + 3000);
  EXPECT_TRUE(roomy.keep_transposes);
  EXPECT_EQ(roomy.keep_bytes, all);
  const BackwardMemory tight = plan_backward_memory(model, 3000, 100, all);
  EXPECT_FALSE(tight.keep_transposes);
  EXPECT_EQ(tight.keep_bytes, all - 1000);  // one layer's transposes at a time
  EXPECT_EQ(plan_backward_memory(model, 3000, 100, 0).keep_bytes, 0);
  EXPECT_GT(default_memory_budget(), 0);
}

TEST(BackwardMemory, DefaultBudgetIsSharedByTheRanksOnTheHost) {
  const int64_t alone = default_memory_budget();
  ASSERT_EQ(setenv("MPI_LOCALNRANKS", "1000", 1), 0);  // MPICH's count (OpenMPI's is read first)
  const int64_t shared = default_memory_budget();
  unsetenv("MPI_LOCALNRANKS");
  EXPECT_GT(shared, 0);
  EXPECT_LT(shared, alone / 500);
}

}  // namespace
}  // namespace moa
