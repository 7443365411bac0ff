// Bad input found by fuzzing `moa` (issue 11): each case runs the built binary under a timeout
// on a flag value or a file made to be wrong, and expects exit code 1, nothing on stdout and
// exactly one stderr line `error: ...` matching the case's pattern: no crash, hang, abort,
// two-line message or raw control byte. The bad files are built once in a temp folder.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

// GCC 12 at -O1 with the sanitizers (CI's ASan build) warns inside <regex> about its own
// std::function members; the warning is in the library's code, not this test's.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "engine/random_model.h"
#include "gguf/gguf_file.h"
#include "support/assets.h"

namespace moa {
namespace {

constexpr int kTimeoutSeconds = 20;

struct BadInput {
  BadInput(const char* name, std::string args, std::string pattern, std::string prefix = "")
      : name(name), args(std::move(args)), pattern(std::move(pattern)), prefix(std::move(prefix)) {}
  const char* name;
  std::string args;     // after `moa`
  std::string pattern;  // ECMAScript regex for the whole stderr line (without its newline)
  std::string prefix;   // shell commands before the binary (resource limits)
};

// A GGUF with one F32 tensor of 2^31 x 2^31 elements: 2^64 bytes, which wraps to 0 in 64 bits.
std::vector<uint8_t> overflowing_tensor_gguf() {
  std::vector<uint8_t> out;
  auto put = [&out](auto value) {
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    out.insert(out.end(), p, p + sizeof(value));
  };
  put(gguf::kMagic);
  put(uint32_t{3});  // version
  put(uint64_t{1});  // tensors
  put(uint64_t{0});  // metadata pairs
  const std::string name = "token_embd.weight";
  put(uint64_t{name.size()});
  out.insert(out.end(), name.begin(), name.end());
  put(uint32_t{2});  // n_dims
  put(uint64_t{1} << 31);
  put(uint64_t{1} << 31);
  put(uint32_t{0});  // F32
  put(uint64_t{0});  // offset
  out.resize((out.size() + 31) / 32 * 32, 0);
  return out;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}

// A random model whose tokenizer has 320 tokens while its embedding (and vocab_size) has 384.
void write_vocab_mismatch(const std::string& path) {
  RandomModelSpec small, large;
  large.n_vocab = 384;
  gguf::GgufWriter writer = build_random_model(large);
  const gguf::GgufFile tokens = gguf::GgufFile::parse(build_random_model(small).serialize(), "");
  for (const char* key :
       {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"}) {
    if (const gguf::Value* v = tokens.find(key)) writer.set(key, *v);
  }
  writer.set_u32("llama.vocab_size", 384);
  writer.write(path);
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

class BadInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir());
    const std::string& d = *dir_;
    write_random_model(RandomModelSpec{}, d + "/model.gguf");
    RandomModelSpec long_context;
    long_context.n_ctx = 1 << 20;
    long_context.n_layer = 64;  // an F32 cache of 2^20 tokens: 8 GiB for keys alone
    write_random_model(long_context, d + "/long.gguf");
    gguf::GgufWriter short_blocks = build_random_model(RandomModelSpec{});
    short_blocks.set_u32("llama.block_count", 1);
    short_blocks.write(d + "/short-blocks.gguf");
    gguf::GgufWriter escaped = build_random_model(RandomModelSpec{});
    escaped.set_string("general.architecture", "lla\nma\x1b[31m");
    escaped.write(d + "/escaped.gguf");
    write_vocab_mismatch(d + "/vocab.gguf");
    write_bytes(d + "/overflow.gguf", overflowing_tensor_gguf());
    ::mkfifo((d + "/fifo").c_str(), 0600);
    ::mkdir((d + "/folder").c_str(), 0700);
    std::ofstream(d + "/prompt.txt") << "hello";

    const auto made = test::run_moa(
        "plan uniform -m " + d + "/model.gguf --window 16 --sinks 500 -o " + d + "/sinks500.json");
    ASSERT_EQ(made.exit_code, 0) << made.err;
    const std::string plan = test::read_file(d + "/sinks500.json");
    std::ofstream(d + "/overflow.json") << replace(plan, "\"sinks\": 500", "\"sinks\": 1e999");
    std::ofstream(d + "/version.json")
        << replace(plan, "\"version\": 1", "\"version\": 4294967297");
    std::ofstream(d + "/big-int.json")
        << replace(plan, "\"sinks\": 500", "\"sinks\": 18446744073709551615");
  }
  static void TearDownTestSuite() { delete dir_; }

  // Runs the case under `timeout` and checks the exit code and the single error line.
  static void expect_rejected(const BadInput& c) {
    SCOPED_TRACE(std::string(c.name) + ": moa " + c.args);
    const test::CommandResult r =
        test::run_moa(c.args, "", c.prefix + "timeout -k 5 " + std::to_string(kTimeoutSeconds));
    EXPECT_NE(r.exit_code, 124) << "timed out (hang)";
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.out, "");
    ASSERT_FALSE(r.err.empty());
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not one line: " << r.err;
    const std::string line = r.err.substr(0, r.err.size() - 1);
    EXPECT_TRUE(std::regex_match(line, std::regex(c.pattern)))
        << "line:    " << line << "\npattern: " << c.pattern;
  }

  static std::string path(const std::string& name) { return *dir_ + "/" + name; }
  static std::string generate(const std::string& model, const std::string& extra) {
    return "generate -m " + path(model) + " -p hi -n 2 " + extra;
  }

  static std::string* dir_;
};

std::string* BadInputTest::dir_ = nullptr;

TEST_F(BadInputTest, HugeContextAndThreadCountsAreRejectedByName) {
  const BadInput cases[] = {
      {"-c past the model", generate("model.gguf", "-c 4611686018427387904"),
       "error: -c: 4611686018427387904 exceeds the model's context length of 1024 tokens"},

      {"-t huge", generate("model.gguf", "-t 100000"),
       "error: -t: 100000 is not a thread count \\(expected 1 \\.\\. 512, or 0 for all \\d+ "
       "cores\\)"},
      {"-t 1000", generate("model.gguf", "-t 1000"), "error: -t: 1000 is not a thread count .*"},
      {"-t negative", generate("model.gguf", "-t -2"), "error: -t: -2 is not a thread count .*"},
      {"bench -t huge", "bench -m " + path("model.gguf") + " -t 100000",
       "error: -t: 100000 is not a thread count .*"},
      {"bench depth overflow",
       "bench -m " + path("model.gguf") + " --ctx 4611686018427387904 -p 0 -n 1 -r 1 -t 1",
       "error: --ctx: depth 4611686018427387904 \\+ test size 1 exceeds 2147483647 positions"},
      {"bench test size overflow",
       "bench -m " + path("model.gguf") + " -p 4611686018427387904 -n 1 -r 1 -t 1",
       "error: -p/-n: test size 4611686018427387904 exceeds 2147483647 positions"},
      {"inspect --ctx overflow", "inspect " + path("model.gguf") + " --ctx 4611686018427387904",
       "error: --ctx: .* overflows 64 bits"},
  };
  for (const BadInput& c : cases) expect_rejected(c);
}

TEST_F(BadInputTest, ContextBeyondMemoryIsRejectedNamingC) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer reserves terabytes of address space: no ulimit -v under it";
#endif
  // The address-space limit makes the allocation fail at once, whatever the machine's memory.
  expect_rejected({"-c with no memory", generate("long.gguf", "-c 1048576 --kv-type f32"),
                   "error: -c 1048576: not enough memory for a KV cache of 1048576 tokens "
                   "\\(lower -c\\)",
                   "ulimit -v 3000000; "});
}

TEST_F(BadInputTest, FilesThatAreNotRegularFailWithoutBlocking) {
  const BadInput cases[] = {
      {"model FIFO", generate("fifo", ""), "error: .*/fifo: not a regular file \\(a FIFO\\)"},
      {"inspect FIFO", "inspect " + path("fifo"),
       "error: .*/fifo: not a regular file \\(a FIFO\\)"},
      {"tokenize FIFO", "tokenize -m " + path("fifo") + " -p hi",
       "error: .*/fifo: not a regular.*"},
      {"prompt FIFO", "generate -m " + path("model.gguf") + " -f " + path("fifo") + " -n 2",
       "error: .*/fifo: not a regular file \\(a FIFO\\)"},
      {"prompt folder", "generate -m " + path("model.gguf") + " -f " + path("folder") + " -n 2",
       "error: .*/folder: not a regular file \\(a directory\\)"},
      {"tokenize folder", "tokenize -m " + path("model.gguf") + " -f " + path("folder"),
       "error: .*/folder: not a regular file \\(a directory\\)"},
      {"plan FIFO", "plan show " + path("fifo"), "error: .*/fifo: not a regular file \\(a FIFO\\)"},
      {"--plan FIFO", generate("model.gguf", "--plan " + path("fifo")),
       "error: .*/fifo: not a regular file \\(a FIFO\\)"},
      {"import FIFO",
       "plan import -m " + path("model.gguf") + " -o " + path("x.json") + " " + path("fifo"),
       "error: .*/fifo: not a regular file \\(a FIFO\\)"},
  };
  for (const BadInput& c : cases) expect_rejected(c);
}

TEST_F(BadInputTest, ModelFilesThatLieAboutTheirShapeAreRejectedAtLoad) {
  const BadInput cases[] = {
      {"tensor bytes overflow", "inspect " + path("overflow.gguf"),
       "error: .*overflow.gguf: tensor 'token_embd.weight': 4611686018427387904 elements of F32 "
       "take more than 2\\^64 bytes"},
      {"vocab != embedding rows", generate("vocab.gguf", ""),
       "error: .*vocab.gguf: the tokenizer has 320 tokens but token_embd.weight has 384 rows"},
      {"block_count too small", generate("short-blocks.gguf", ""),
       "error: .*short-blocks.gguf: metadata 'llama.block_count' is 1 but tensor "
       "'blk.1.attn_norm.weight' belongs to block 1"},
      {"inspect block_count too small", "inspect " + path("short-blocks.gguf"),
       "error: .*short-blocks.gguf: metadata 'llama.block_count' is 1 .*"},
      {"control bytes in a name", "inspect " + path("escaped.gguf"),
       "error: .*escaped.gguf: architecture 'lla\\\\nma\\\\e\\[31m' is not supported .*"},
      {"control bytes in a path", "inspect '" + path("new\nline.gguf") + "'",
       "error: .*/new\\\\nline.gguf: cannot open file: No such file or directory"},
  };
  for (const BadInput& c : cases) expect_rejected(c);
}

TEST_F(BadInputTest, FlagParseErrorsAreOneLine) {
  const std::string m = "generate -m " + path("model.gguf") + " -p hi ";
  const BadInput cases[] = {
      {"-n 1e12", m + "-n 1e12", "error: .*--n-predict.*1e12.*"},
      {"-n abc", m + "-n abc", "error: .*--n-predict.*abc.*"},
      {"-c abc", m + "-c abc", "error: .*--ctx-size.*abc.*"},
      {"--temp abc", m + "--temp abc", "error: .*--temp.*abc.*"},
      {"unknown flag", m + "--bogus", "error: .*--bogus.*"},
      {"missing -m", "generate -p hi", "error: .*--model is required.*"},
      {"no subcommand", "plan", "error: .*subcommand.*"},
      {"--lengths abc", "plan show " + path("sinks500.json") + " --lengths 12,abc",
       "error: .*--lengths.*abc.*"},
      {"--lengths 0", "plan show " + path("sinks500.json") + " --lengths 0",
       "error: --lengths: 0 must be a positive token count"},
      {"bench -p abc", "bench -m " + path("model.gguf") + " -p abc", "error: .*--n-prompt.*abc.*"},
      {"inspect --ctx abc", "inspect " + path("model.gguf") + " --ctx abc", "error: .*--ctx.*"},
  };
  for (const BadInput& c : cases) expect_rejected(c);
  // --help and --version still go through CLI11: text on stdout, exit 0.
  for (const char* ok : {"generate --help", "--version"}) {
    const test::CommandResult r = test::run_moa(ok);
    EXPECT_EQ(r.exit_code, 0) << ok << ": " << r.err;
    EXPECT_FALSE(r.out.empty()) << ok;
  }
}

TEST_F(BadInputTest, PlanFilesWithOutOfRangeNumbersNameTheFileAndField) {
  const BadInput cases[] = {
      {"JSON number overflow", "plan show " + path("overflow.json"),
       "error: .*/overflow.json: not a valid plan: number overflow parsing '1e999'"},
      {"version past 32 bits", "plan show " + path("version.json"),
       "error: .*/version.json: version: 4294967297 is not supported \\(supported: 1\\)"},
      {"sinks past 64 bits", "plan show " + path("big-int.json"),
       "error: .*/big-int.json: sinks: 18446744073709551615 is out of range .*"},
      {"plan sinks past -c", generate("model.gguf", "-c 100 --plan " + path("sinks500.json")),
       "error: .*/sinks500.json: sinks: 500 sink tokens exceed the context of 100 tokens \\(-c\\)"},
      {"write error names -o", "plan dense -m " + path("model.gguf") + " -o " + path("no/dir.json"),
       "error: .*/no/dir.json: cannot create file: No such file or directory"},
  };
  for (const BadInput& c : cases) expect_rejected(c);
}

TEST_F(BadInputTest, OutputsThatWouldReplaceAnInputOrASpecialFileAreRefused) {
  const std::string model = path("model.gguf");
  const auto model_bytes = test::read_file(model).size();
  const BadInput cases[] = {
      {"-o is the model", "plan dense -m " + model + " -o " + model,
       "error: .*/model.gguf: is an input of this command \\(expected another output path\\)"},
      {"-o is a FIFO", "plan dense -m " + model + " -o " + path("fifo"),
       "error: .*/fifo: not a regular file \\(moa writes its outputs only to regular files, as "
       "it replaces them whole\\)"},
      {"-o is a folder", "plan dense -m " + model + " -o " + path("folder"),
       "error: .*/folder: not a regular file .*"},
  };
  for (const BadInput& c : cases) expect_rejected(c);
  EXPECT_EQ(test::read_file(model).size(), model_bytes);
  struct stat st {};
  ASSERT_EQ(::stat(path("fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the FIFO was replaced";
}

TEST_F(BadInputTest, EmptyOrWrappedFlagValuesAreRefused) {
  const BadInput cases[] = {
      {"--temp ''", generate("model.gguf", "--temp ''"),
       "error: --temp: an empty value \\(expected one\\)"},
      {"-f ''", "generate -m " + path("model.gguf") + " -f '' -n 2",
       "error: --file: an empty value \\(expected one\\)"},
      {"-o ''", "plan dense -m " + path("model.gguf") + " -o ''",
       "error: --output: an empty value \\(expected one\\)"},
      {"--seed -1", generate("model.gguf", "--seed -1"),
       "error: --seed: '-1' is not a seed \\(expected a whole number 0 \\.\\. "
       "9223372036854775807\\)"},
      {"--seed 2^64", generate("model.gguf", "--seed 18446744073709551616"),
       "error: --seed: '18446744073709551616' is not a seed .*"},
      {"--method dense with --plan",
       generate("model.gguf", "--method dense --plan " + path("sinks500.json")),
       "error: --method: dense runs no plan \\(give --method moa with --plan, or no --plan\\)"},
  };
  for (const BadInput& c : cases) expect_rejected(c);
  // The largest seed is a seed.
  const test::CommandResult r =
      test::run_moa(generate("model.gguf", "-t 1 --seed 9223372036854775807"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(BadInputTest, RepeatedLengthsAndThreadCountsOfLongJobsAreRefused) {
  const std::string m = "-m " + path("model.gguf") + " ";
  const BadInput cases[] = {
      {"calibrate --lengths 512,512", "calibrate " + m + "--lengths 512,512 -o " + path("c.json"),
       "error: --lengths: expected increasing lengths, each once"},
      {"calibrate -t 513", "calibrate " + m + "--lengths 512 -t 513 -o " + path("c.json"),
       "error: -t: 513 is not a thread count .*"},
      {"profile -t 100000", "profile " + m + "--calib " + path("c.json") + " -t 100000 -o x",
       "error: -t: 100000 is not a thread count .*"},
  };
  for (const BadInput& c : cases) expect_rejected(c);
}

TEST_F(BadInputTest, AFailedWriteToStdoutIsAnError) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no /dev/full on this machine";
  const std::string err = test::temp_dir() + "/stderr";
  for (const std::string& args :
       {"inspect " + path("model.gguf"), generate("model.gguf", "-t 1 --temp 0"),
        "plan show " + path("sinks500.json")}) {
    SCOPED_TRACE(args);
    const std::string command =
        "'" + test::moa_binary() + "' " + args + " >/dev/full 2>'" + err + "'";
    const int status = std::system(command.c_str());
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 1);
    const std::string line = test::read_file(err);
    // generate's statistics (stderr) come first; the error is the last line.
    EXPECT_TRUE(
        std::regex_match(line, std::regex("([^\\n]*\\n)*error: stdout: write failed[^\\n]*\\n")))
        << line;
  }
}

TEST_F(BadInputTest, PlanShowAtAHugeLengthFinishesAtOnce) {
  const test::CommandResult r =
      test::run_moa("plan show " + path("sinks500.json") + " --lengths 1000000000000 --json", "",
                    "timeout -k 5 " + std::to_string(kTimeoutSeconds));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"causal_density\""), std::string::npos) << r.out;
}

TEST_F(BadInputTest, PlanSinksBeyondAShortRunButWithinTheContextAreFine) {
  // 500 sinks, -c 1024, prompt + -n of a few tokens: every token is a sink, which is dense.
  const test::CommandResult r = test::run_moa(
      generate("model.gguf", "-c 1024 --temp 0 -t 1 --plan " + path("sinks500.json")));
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace
}  // namespace moa
