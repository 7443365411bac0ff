// Model description from GGUF metadata: every architecture and rope variant of the random
// model builder, the shared real models, and a clear error per kind of bad metadata.
#include <gtest/gtest.h>

#include "engine/model_config.h"
#include "engine/random_model.h"
#include "gguf/gguf_file.h"
#include "gguf/quant.h"
#include "support/assets.h"
#include "util/error.h"

namespace moa {
namespace {

gguf::GgufFile parse(const gguf::GgufWriter& w) {
  return gguf::GgufFile::parse(w.serialize(), "m.gguf");
}

std::string config_error(const gguf::GgufWriter& w) {
  try {
    gguf::GgufFile f = parse(w);
    check_model_tensors(f, read_model_config(f));
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return {};
}

TEST(ModelConfig, ReadsRandomLlamaWithGqa) {
  RandomModelSpec spec;
  spec.n_head = 8;
  spec.n_head_kv = 2;
  gguf::GgufFile f = parse(build_random_model(spec));
  ModelConfig c = read_model_config(f);
  check_model_tensors(f, c);
  EXPECT_EQ(c.arch, Architecture::kLlama);
  EXPECT_EQ(c.n_layer, 2);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.n_group(), 4);
  EXPECT_EQ(c.kv_dim(), 16);
  EXPECT_EQ(c.rope_type, RopeType::kNormal);
  EXPECT_FALSE(c.has_qkv_bias);
  EXPECT_FALSE(c.tied_output);
  EXPECT_EQ(c.n_vocab, 320);
}

TEST(ModelConfig, ReadsQwen2WithBiasesNeoxRopeAndTiedOutput) {
  RandomModelSpec spec;
  spec.arch = Architecture::kQwen2;
  spec.tied_output = true;
  gguf::GgufFile f = parse(build_random_model(spec));
  ModelConfig c = read_model_config(f);
  check_model_tensors(f, c);
  EXPECT_EQ(c.rope_type, RopeType::kNeox);
  EXPECT_TRUE(c.has_qkv_bias);
  EXPECT_TRUE(c.tied_output);
}

TEST(ModelConfig, ReadsRopeScaling) {
  RandomModelSpec spec;
  spec.rope_linear_factor = 4.0f;
  spec.rope_freq_base = 500000.0f;
  ModelConfig c = read_model_config(parse(build_random_model(spec)));
  EXPECT_EQ(c.rope_scaling, RopeScaling::kLinear);
  EXPECT_FLOAT_EQ(c.rope_scale_factor, 4.0f);
  EXPECT_FLOAT_EQ(c.rope_freq_base, 500000.0f);
  spec = {};
  spec.llama3_rope_freqs = true;
  c = read_model_config(parse(build_random_model(spec)));
  EXPECT_EQ(c.rope_scaling, RopeScaling::kLlama3);
  ASSERT_EQ(c.rope_freq_factors.size(), 8u);
  EXPECT_FLOAT_EQ(c.rope_freq_factors[1], 2.0f);
}

TEST(ModelConfig, BuildsEveryWeightType) {
  for (gguf::TensorType type :
       {gguf::TensorType::kF32, gguf::TensorType::kF16, gguf::TensorType::kBF16,
        gguf::TensorType::kQ8_0, gguf::TensorType::kQ4_0, gguf::TensorType::kQ4_K,
        gguf::TensorType::kQ6_K}) {
    RandomModelSpec spec;
    spec.weight_type = type;
    spec.n_embd = 256;
    spec.n_ff = 512;
    gguf::GgufFile f = parse(build_random_model(spec));
    check_model_tensors(f, read_model_config(f));
    EXPECT_EQ(f.tensor("blk.0.ffn_down.weight").type, type);
    EXPECT_EQ(f.tensor("blk.0.ffn_norm.weight").type, gguf::TensorType::kF32);
  }
}

TEST(ModelConfigErrors, UnsupportedArchitecture) {
  gguf::GgufWriter w = build_random_model({});
  w.set_string("general.architecture", "gpt2");
  EXPECT_EQ(config_error(w),
            "m.gguf: architecture 'gpt2' is not supported (supported: llama, qwen2)");
}

TEST(ModelConfigErrors, MissingRequiredKey) {
  gguf::GgufWriter w = build_random_model({});
  w.remove("llama.embedding_length");
  EXPECT_EQ(config_error(w), "m.gguf: required metadata key 'llama.embedding_length' is missing");
  w = build_random_model({});
  w.remove("llama.attention.layer_norm_rms_epsilon");
  EXPECT_NE(config_error(w).find("'llama.attention.layer_norm_rms_epsilon' is missing"),
            std::string::npos);
}

TEST(ModelConfigErrors, AbsurdOrInconsistentValues) {
  gguf::GgufWriter w = build_random_model({});
  w.set_u32("llama.block_count", 0);
  EXPECT_NE(config_error(w).find("'llama.block_count': 0 is out of range"), std::string::npos);
  w = build_random_model({});
  w.set_u32("llama.attention.head_count_kv", 3);
  EXPECT_NE(config_error(w).find("does not divide head_count"), std::string::npos);
  w = build_random_model({});
  w.set_string("llama.block_count", "two");
  EXPECT_NE(config_error(w).find("'llama.block_count': expected an integer, got string"),
            std::string::npos);
  w = build_random_model({});
  w.set_f32("llama.rope.freq_base", -1.0f);
  EXPECT_NE(config_error(w).find("'llama.rope.freq_base'"), std::string::npos);
}

TEST(ModelConfigErrors, TensorsThatDoNotMatchMetadata) {
  gguf::GgufWriter w = build_random_model({});
  w.set_u32("llama.feed_forward_length", 128);
  EXPECT_NE(config_error(w).find("tensor 'blk.0.ffn_gate.weight': shape [64, 96] does not match "
                                 "the metadata (expected [64, 128])"),
            std::string::npos);
  w = build_random_model({});
  w.set_u32("llama.block_count", 3);
  EXPECT_EQ(config_error(w), "m.gguf: tensor 'blk.2.attn_norm.weight' is missing");
}

TEST(ModelConfigRealModels, Stories260K) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  gguf::GgufFile f = gguf::GgufFile::open(path);
  ModelConfig c = read_model_config(f);
  check_model_tensors(f, c);
  EXPECT_EQ(c.n_layer, 5);
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_head, 8);
  EXPECT_EQ(c.n_head_kv, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.n_ff, 172);
  EXPECT_EQ(c.n_vocab, 512);
  EXPECT_EQ(c.n_ctx_train, 2048);
  EXPECT_FLOAT_EQ(c.rope_freq_base, 10000.0f);
  EXPECT_EQ(count_parameters(f), 292800);
}

TEST(ModelConfigRealModels, EverySharedModelLoads) {
  for (const char* name : {"stories260K-F16.gguf", "stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf",
                           "llama-2-tiny-random.gguf"}) {
    MOA_REQUIRE_ASSET(path, std::string("models/") + name);
    gguf::GgufFile f = gguf::GgufFile::open(path);
    EXPECT_NO_THROW(check_model_tensors(f, read_model_config(f))) << name;
  }
}

}  // namespace
}  // namespace moa
