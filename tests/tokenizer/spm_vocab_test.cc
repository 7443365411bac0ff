// Golden tests of the SentencePiece tokenizer against llama.cpp's own tokenizer test data
// (tests/test-tokenizer-0 format: 46 inputs in .inp, expected ids in .out, produced with
// add_special=false, parse_special=false) and against prompt ids llama.cpp reported for the
// stories260K model.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "support/assets.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_cases.h"

namespace moa {
namespace {

// The input with control bytes and non-ASCII shown as escapes, so a failure reads clearly.
std::string escaped(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c >= 0x7F) {
      out += fmt::format("\\x{:02X}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string describe(const Tokenizer& tok, const std::vector<TokenId>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    const bool valid = ids[i] >= 0 && ids[i] < tok.n_vocab();
    out += fmt::format("{}{} '{}'", i == 0 ? "" : ", ", ids[i],
                       valid ? escaped(tok.token_text(ids[i])) : "?");
  }
  return out + "]";
}

// Checks every case of `inp_relative` against `out_relative` with the tokenizer of `gguf_relative`.
void expect_matches_llama_cpp(const std::string& gguf_relative, const std::string& inp_relative,
                              const std::string& out_relative) {
  MOA_REQUIRE_ASSET(gguf_path, gguf_relative);
  MOA_REQUIRE_ASSET(inp_path, inp_relative);
  MOA_REQUIRE_ASSET(out_path, out_relative);
  const Tokenizer tok = Tokenizer::from_gguf(gguf::GgufFile::open(gguf_path));
  const int failures = test::count_vocab_case_failures(
      tok, inp_path, out_path,
      [&](size_t i, const std::string& input, const std::vector<TokenId>& expected,
          const std::vector<TokenId>& got) {
        ADD_FAILURE() << "case " << i << " input \"" << escaped(input) << "\"\n  expected "
                      << describe(tok, expected) << "\n  got      " << describe(tok, got);
      });
  EXPECT_EQ(failures, 0) << gguf_relative;
}

TEST(SpmVocab, LlamaSpmMatchesLlamaCpp) {
  expect_matches_llama_cpp("data/tokenizer/ggml-vocab-llama-spm.gguf",
                           "data/tokenizer/ggml-vocab-llama-spm.gguf.inp",
                           "data/tokenizer/ggml-vocab-llama-spm.gguf.out");
}

TEST(SpmVocab, Phi3MatchesLlamaCpp) {
  expect_matches_llama_cpp("data/tokenizer/ggml-vocab-phi-3.gguf",
                           "data/tokenizer/ggml-vocab-phi-3.gguf.inp",
                           "data/tokenizer/ggml-vocab-phi-3.gguf.out");
}

TEST(SpmVocab, Stories260KMatchesLlamaCpp) {
  expect_matches_llama_cpp("models/stories260K.gguf", "models/stories260K.gguf.inp",
                           "models/stories260K.gguf.out");
}

TEST(SpmVocab, LlamaTinyRandomMatchesLlamaCpp) {
  expect_matches_llama_cpp("models/llama-2-tiny-random.gguf",
                           "data/tokenizer/ggml-vocab-llama-spm.gguf.inp",
                           "data/tokenizer/ggml-vocab-llama-spm.gguf.out");
}

TEST(SpmVocab, DecodeRoundTripsEveryTestInput) {
  MOA_REQUIRE_ASSET(gguf_path, "data/tokenizer/ggml-vocab-llama-spm.gguf");
  MOA_REQUIRE_ASSET(inp_path, "data/tokenizer/ggml-vocab-llama-spm.gguf.inp");
  const Tokenizer tok = Tokenizer::from_gguf(gguf::GgufFile::open(gguf_path));
  for (const std::string& input : split_vocab_test_inputs(test::read_file(inp_path))) {
    EXPECT_EQ(tok.decode(tok.encode(input, false, false)), input) << escaped(input);
  }
}

TEST(SpmVocab, Stories260KPromptsMatchLlamaCpp) {
  MOA_REQUIRE_ASSET(gguf_path, "models/stories260K.gguf");
  const Tokenizer tok = Tokenizer::from_gguf(gguf::GgufFile::open(gguf_path));
  EXPECT_EQ(tok.encode("Once upon a time", true, false),
            (std::vector<TokenId>{1, 403, 407, 261, 378}));
  EXPECT_EQ(tok.encode("I believe the meaning of life is", true, false).size(), 18u);
  EXPECT_EQ(tok.encode("Write a joke about AI from a very long prompt which will not be truncated",
                       true, false)
                .size(),
            46u);
  EXPECT_EQ(tok.bos(), 1);
  EXPECT_EQ(tok.eos(), 2);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_TRUE(tok.is_eog(2));
}

// Phi-3 marks its added tokens rstrip (llama.cpp keys this on general.name), and "</s>" is a
// user-defined token there, so it is matched even without parse_special.
TEST(SpmVocab, Phi3SpecialTokensSwallowFollowingWhitespace) {
  MOA_REQUIRE_ASSET(gguf_path, "data/tokenizer/ggml-vocab-phi-3.gguf");
  const Tokenizer tok = Tokenizer::from_gguf(gguf::GgufFile::open(gguf_path));
  const TokenId hi = tok.find_token("\xE2\x96\x81Hi").value();
  const TokenId there = tok.find_token("\xE2\x96\x81there").value();
  EXPECT_EQ(tok.encode("Hi</s>  there", false, false), (std::vector<TokenId>{hi, 2, there}));
  EXPECT_EQ(tok.encode("<|user|>\nHi<|end|>\n<|assistant|>", false, true),
            (std::vector<TokenId>{32010, hi, 32007, 32001}));
  const std::vector<TokenId> plain = tok.encode("<|user|>\nHi", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 32010), 0);
  EXPECT_EQ(tok.eos(), 32000);
  EXPECT_TRUE(tok.is_eog(32000));
  EXPECT_TRUE(tok.is_eog(32007));  // <|end|>, found by its text
  EXPECT_TRUE(tok.is_control(32007));
}

TEST(SpmVocab, LlamaTinyRandomPromptMatchesLlamaCpp) {
  MOA_REQUIRE_ASSET(gguf_path, "models/llama-2-tiny-random.gguf");
  const Tokenizer tok = Tokenizer::from_gguf(gguf::GgufFile::open(gguf_path));
  EXPECT_EQ(tok.encode("Once upon a time", true, false),
            (std::vector<TokenId>{1, 9038, 2501, 263, 931}));
  EXPECT_EQ(tok.encode("<s>Once", false, true), (std::vector<TokenId>{1, 9038}));
}

}  // namespace
}  // namespace moa
