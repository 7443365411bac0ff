// End-to-end tests of `moa inspect` and `moa tokenize`: real models, JSON output, and the
// one-line errors users see for bad files.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "engine/random_model.h"
#include "gguf/gguf_writer.h"
#include "support/assets.h"

namespace moa {
namespace {

using test::expect_one_line_error;
using test::run_moa;

TEST(InspectCommand, DescribesEverySharedModel) {
  for (const char* name : {"stories260K.gguf", "stories260K-F16.gguf", "stories260K-Q8_0.gguf",
                           "stories260K-Q4_0.gguf", "llama-2-tiny-random.gguf"}) {
    MOA_REQUIRE_ASSET(path, std::string("models/") + name);
    test::CommandResult r = run_moa("inspect '" + path + "'");
    EXPECT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_NE(r.out.find("architecture:     llama"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("kv cache:"), std::string::npos) << r.out;
  }
}

TEST(InspectCommand, JsonHasDimensionsAndMemory) {
  MOA_REQUIRE_ASSET(path, "models/stories260K-Q8_0.gguf");
  test::CommandResult r = run_moa("inspect --json --ctx 1024 '" + path + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["n_layer"], 5);
  EXPECT_EQ(j["n_head_kv"], 4);
  EXPECT_EQ(j["parameters"], 292800);
  EXPECT_EQ(j["tensor_types"]["Q8_0"], 32);
  EXPECT_EQ(j["tensor_types"]["F32"], 16);
  EXPECT_EQ(j["tokenizer"]["n_vocab"], 512);
  // 2 (K and V) x 5 layers x 1024 tokens x 32 (4 kv heads x 8) x 4 bytes
  EXPECT_EQ(j["memory"]["kv_f32_bytes"], 2 * 5 * 1024 * 32 * 4);
}

// K-quant files with Q5_K and Q5_0 tensors (llama-quantize's Q5_K_M and Q5_0 mixes) load and
// name their tensor types.
TEST(InspectCommand, NamesQ5TensorTypes) {
  const std::pair<const char*, const char*> files[] = {
      {"tiny-llama-k-Q5_K_M.gguf", "F32 x5, Q5_K x13, Q6_K x3"},
      {"tiny-llama-k-Q5_0.gguf", "F32 x5, Q5_0 x15, Q6_K x1"}};
  for (const auto& [name, types] : files) {
    MOA_REQUIRE_ASSET(path, std::string("models/") + name);
    test::CommandResult r = run_moa("inspect '" + path + "'");
    EXPECT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_NE(r.out.find(std::string("tensor types:     ") + types), std::string::npos) << r.out;
  }
}

TEST(InspectCommand, RandomQwen2Model) {
  RandomModelSpec spec;
  spec.arch = Architecture::kQwen2;
  std::string path = test::temp_dir() + "/qwen2.gguf";
  write_random_model(spec, path);
  test::CommandResult r = run_moa("inspect --json '" + path + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "qwen2");
  EXPECT_EQ(j["rope"]["type"], "neox");
  EXPECT_EQ(j["qkv_bias"], true);
}

TEST(InspectCommand, BadInputs) {
  expect_one_line_error(run_moa("inspect /nonexistent.gguf"),
                        "/nonexistent.gguf: cannot open file");
  std::string dir = test::temp_dir();
  std::ofstream(dir + "/text.gguf") << "this is not a model";
  expect_one_line_error(run_moa("inspect " + dir + "/text.gguf"), "header.magic: not a GGUF file");

  std::vector<uint8_t> bytes = build_random_model({}).serialize();
  std::ofstream(dir + "/cut.gguf", std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), 1000);
  expect_one_line_error(run_moa("inspect " + dir + "/cut.gguf"),
                        "cut.gguf: metadata 'tokenizer.ggml.tokens': array length");

  gguf::GgufWriter w = build_random_model({});
  w.set_string("general.architecture", "mamba");
  w.write(dir + "/mamba.gguf");
  expect_one_line_error(run_moa("inspect " + dir + "/mamba.gguf"),
                        "architecture 'mamba' is not supported (supported: llama, qwen2)");

  w = build_random_model({});
  w.remove("llama.block_count");
  w.write(dir + "/nolayers.gguf");
  expect_one_line_error(run_moa("inspect " + dir + "/nolayers.gguf"),
                        "required metadata key 'llama.block_count' is missing");

  w = build_random_model({});
  w.remove("tokenizer.ggml.scores");
  w.write(dir + "/noscores.gguf");
  expect_one_line_error(run_moa("inspect " + dir + "/noscores.gguf"), "tokenizer.ggml.scores");
}

TEST(TokenizeCommand, PrintsIdsLikeLlamaTokenize) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  test::CommandResult r = run_moa("tokenize -m '" + path + "' --ids -p 'Once upon a time'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 403 407 261 378\n");
  r = run_moa("tokenize -m '" + path + "' --ids --no-bos", "Once upon a time");
  EXPECT_EQ(r.out, "403 407 261 378\n");
  r = run_moa("tokenize -m '" + path + "' -p 'Once'");
  EXPECT_NE(r.out.find("403 -> ' Once'"), std::string::npos) << r.out;
}

TEST(TokenizeCommand, WorksOnVocabOnlyBpeFiles) {
  MOA_REQUIRE_ASSET(path, "data/tokenizer/ggml-vocab-gpt-2.gguf");
  test::CommandResult r = run_moa("tokenize -m '" + path + "' --ids --no-bos -p 'Hello world'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "15496 995\n");
}

TEST(TokenizeCommand, BadInputs) {
  expect_one_line_error(run_moa("tokenize -m /nonexistent.gguf -p hi"), "cannot open file");
  gguf::GgufWriter w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set("tokenizer.ggml.tokens", gguf::Value::string_array({"a", "b"}));
  std::string path = test::temp_dir() + "/nomerges.gguf";
  w.write(path);
  expect_one_line_error(run_moa("tokenize -m " + path + " -p hi"), "tokenizer.ggml.merges");
}

}  // namespace
}  // namespace moa
