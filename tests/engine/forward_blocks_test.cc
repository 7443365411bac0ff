// The forward's blocks called one at a time (embed_batch, attention_block, ffn_block,
// logits_for_rows) reproduce `forward` bit for bit, so the profiler can recompute a layer
// from its input and get exactly the activations the forward had.
#include <gtest/gtest.h>

#include <vector>

#include "engine/forward.h"
#include "engine/random_model.h"

namespace moa {
namespace {

TEST(ForwardBlocks, BlockByBlockEqualsForwardBitForBit) {
  RandomModelSpec spec;
  spec.arch = Architecture::kQwen2;  // exercises the q/k/v biases too
  spec.n_layer = 3;
  const Model model =
      Model::from_file(gguf::GgufFile::parse(build_random_model(spec).serialize(), "random"));
  std::vector<TokenId> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back(static_cast<TokenId>((i * 53 + 7) % 300));
  const SequenceBatch batch{0, tokens};

  KvCache whole(kv_shape(model.config(), 64, 1, kernels::KvType::kF32));
  const Logits expected = forward(model, whole, std::span(&batch, 1), LogitsMode::kAll, 2);

  KvCache blocks(kv_shape(model.config(), 64, 1, kernels::KvType::kF32));
  ForwardActivations a = embed_batch(model, blocks, std::span(&batch, 1));
  for (int64_t layer = 0; layer < model.config().n_layer; ++layer) {
    attention_block(model, layer, blocks, a, 2);
    ffn_block(model, layer, a, 2);
  }
  std::vector<int64_t> rows;
  for (int64_t r = 0; r < a.n_rows(); ++r) rows.push_back(r);
  const Logits got = logits_for_rows(model, a, rows, 2);
  ASSERT_EQ(got.data.size(), expected.data.size());
  for (size_t i = 0; i < got.data.size(); ++i) ASSERT_EQ(got.data[i], expected.data[i]) << i;
  EXPECT_EQ(a.positions.back(), 39);
}

}  // namespace
}  // namespace moa
