// `moa generate` end to end: streamed greedy text, speeds on stderr, reproducible sampling, stop
// strings, and one-line errors with a non-zero exit for bad input.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "engine/random_model.h"
#include "support/assets.h"

namespace moa {
namespace {

using test::expect_one_line_error;
using test::run_moa;

std::string random_model_path() {
  const std::string path = test::temp_dir() + "/random.gguf";
  write_random_model(RandomModelSpec{}, path);
  return path;
}

TEST(GenerateCommand, StreamsStories260KGreedyContinuation) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const auto r = run_moa("generate -m '" + model + "' -p 'Once upon a time' -n 16 --temp 0 -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("there was a little girl named Lily"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("prefill: 5 tokens"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("decode: 15 tokens"), std::string::npos) << r.err;
  // Sized for N = prompt + -n: 5 layers x 4 KV heads x 21 positions x 8 dims, F16 keys and
  // values, plus the sequence length.
  EXPECT_NE(r.err.find("kv cache: 13,448 B (dense at N = 21)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tok/s"), std::string::npos) << r.err;
}

TEST(GenerateCommand, MappedModelGivesTheSameText) {
  const std::string model = random_model_path();
  const std::string args = "generate -m '" + model + "' -p 'hello world' -n 12 --temp 0 -t 2";
  const auto read = run_moa(args);
  const auto mapped = run_moa(args + " --mmap");
  ASSERT_EQ(read.exit_code, 0) << read.err;
  ASSERT_EQ(mapped.exit_code, 0) << mapped.err;
  EXPECT_FALSE(read.out.empty());
  EXPECT_EQ(mapped.out, read.out);
}

TEST(GenerateCommand, StopStringEndsTheOutputBeforeIt) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  const auto r = run_moa("generate -m '" + model +
                         "' -p 'Once upon a time' -n 32 --temp 0 --stop 'little' --kv-type f32");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, ", there was a \n");
}

// A Q8_0 cache for the dense and the streaming cache, each reporting fewer bytes than F16
// (stories260K's rows of 8 values: 10 bytes against 16).
TEST(GenerateCommand, Q8_0KvCacheGeneratesWithFewerBytes) {
  MOA_REQUIRE_ASSET(model, "models/stories260K.gguf");
  for (const std::string method : {"", " --method streaming --density 0.5 --sinks 4"}) {
    const std::string args =
        "generate -m '" + model + "' -p 'Once upon a time' -n 16 --temp 0" + method;
    const auto f16 = run_moa(args + " --kv-type f16"), q8 = run_moa(args + " --kv-type q8_0");
    ASSERT_EQ(q8.exit_code, 0) << q8.err;
    ASSERT_EQ(f16.exit_code, 0) << f16.err;
    EXPECT_FALSE(q8.out.empty());
    EXPECT_GT(test::reported_kv_bytes(q8.err), 0) << q8.err;
    EXPECT_LT(test::reported_kv_bytes(q8.err), test::reported_kv_bytes(f16.err)) << q8.err;
  }
}

TEST(GenerateCommand, SameSeedGivesTheSameText) {
  const std::string model = random_model_path();
  const std::string args = "generate -m '" + model + "' -p 'once upon' -n 12 --temp 1.2 --seed ";
  const auto a = run_moa(args + "7"), b = run_moa(args + "7");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_FALSE(a.out.empty());
}

TEST(GenerateCommand, ReadsThePromptFromAFileWithAChatTemplate) {
  const std::string model = random_model_path();
  const std::string prompt = test::temp_dir() + "/prompt.txt";
  std::ofstream(prompt) << "the time";
  const auto r = run_moa("generate -m '" + model + "' -f '" + prompt +
                         "' -n 3 --temp 0 --chat-template llama2 --system 'be short'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("prefill:"), std::string::npos) << r.err;
}

TEST(GenerateCommand, RejectsBadInputWithOneLineErrors) {
  const std::string model = random_model_path();
  const std::string m = "generate -m '" + model + "' ";
  expect_one_line_error(run_moa(m + "-p '' -n 4"), "--prompt: an empty value");
  expect_one_line_error(run_moa(m + "-p 'hi' -n 0"), "-n");
  expect_one_line_error(run_moa(m + "-p 'hi' -n -3"), "-n");
  expect_one_line_error(run_moa(m + "-p 'the time once upon' -n 4 -c 4"), "context");
  expect_one_line_error(run_moa(m + "-p 'hi' --temp -1"), "--temp");
  expect_one_line_error(run_moa(m + "-p 'hi' --top-p 2"), "--top-p");
  expect_one_line_error(run_moa(m + "-p 'hi' --min-p -0.5"), "--min-p");
  expect_one_line_error(run_moa(m + "-p 'hi' --top-k -1"), "--top-k");
  expect_one_line_error(run_moa(m + "-p 'hi' --repeat-penalty 0"), "--repeat-penalty");
  expect_one_line_error(run_moa(m + "-p 'hi' --kv-type q4"), "--kv-type");
  expect_one_line_error(run_moa(m + "-p 'hi' --chat-template nope"), "--chat-template");
  expect_one_line_error(run_moa("generate -m /nonexistent/model.gguf -p hi"),
                        "/nonexistent/model.gguf");
}

TEST(GenerateCommand, RejectsAModelWhoseTensorsDoNotMatchItsMetadata) {
  gguf::GgufWriter writer = build_random_model(RandomModelSpec{});
  writer.set_u32("llama.embedding_length", 32);
  const std::string path = test::temp_dir() + "/mismatched.gguf";
  writer.write(path);
  const auto r = run_moa("generate -m '" + path + "' -p hi -n 2");
  expect_one_line_error(r, "mismatched.gguf");
}

}  // namespace
}  // namespace moa
