// Byte-level BPE: the GPT-2 byte alphabet, merge order on a hand-made vocab, and llama.cpp's
// 46 tokenizer test cases for every "gpt2" vocab GGUF we have (plus Llama 3 / Qwen2 ones when a
// GGUF with that tokenizer is supplied).
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "support/assets.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"
#include "tokenizer/vocab_cases.h"

namespace moa {
namespace {

TEST(BpeByteMapping, PrintableBytesStandForThemselvesAndOthersShiftPast255) {
  EXPECT_EQ(bpe_bytes_to_unicode("Hello"), "Hello");
  EXPECT_EQ(bpe_bytes_to_unicode(" "), "\u0120");   // Ġ
  EXPECT_EQ(bpe_bytes_to_unicode("\n"), "\u010A");  // Ċ
  EXPECT_EQ(bpe_bytes_to_unicode(std::string(1, '\0')), "\u0100");
  EXPECT_EQ(bpe_bytes_to_unicode("\xAD"), "\u0143");  // the last of the 68 shifted bytes
  EXPECT_EQ(bpe_bytes_to_unicode("\xC3\xBC"), "\u00C3\u00BC");
}

TEST(BpeByteMapping, EveryByteRoundTrips) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string mapped = bpe_bytes_to_unicode(all);
  EXPECT_EQ(bpe_unicode_to_bytes(mapped), all);
  for (int b = 0; b < 256; ++b) {
    const std::string one(1, static_cast<char>(b));
    EXPECT_EQ(bpe_unicode_to_bytes(bpe_bytes_to_unicode(one)), one) << "byte " << b;
  }
}

TEST(BpeByteMapping, CharacterOutsideTheAlphabetIsReportedLikeLlamaCpp) {
  EXPECT_EQ(bpe_unicode_to_bytes("a\u2581"), "a[UNK_BYTE_0xe29681a\u2581]");
}

// A vocab whose merges make "abc" only via "b c" first (lower rank), then "a bc".
Vocab make_small_vocab() {
  Vocab vocab;
  vocab.kind = TokenizerKind::kBytePairEncoding;
  vocab.pre_name = "gpt-2";
  vocab.tokens = {"a", "b", "c", "ab", "bc", "abc", "\u0120", "\u0120a", "x"};
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    vocab.token_to_id.emplace(vocab.tokens[i], static_cast<TokenId>(i));
  }
  const std::vector<std::string> merges = {"b c", "a b", "a bc", "\u0120 a"};
  for (size_t i = 0; i < merges.size(); ++i) {
    vocab.merge_rank.emplace(merges[i], static_cast<int32_t>(i));
  }
  vocab.n_merges = static_cast<int64_t>(merges.size());
  return vocab;
}

std::vector<TokenId> encode(const Vocab& vocab, std::string_view text) {
  std::vector<TokenId> ids;
  bpe_encode(vocab, text, ids);
  return ids;
}

TEST(BpeEncode, MergesLowestRankFirst) {
  const Vocab vocab = make_small_vocab();
  EXPECT_EQ(encode(vocab, "abc"), (std::vector<TokenId>{5}));  // b+c, then a+bc
  EXPECT_EQ(encode(vocab, "ab"), (std::vector<TokenId>{3}));
  EXPECT_EQ(encode(vocab, "abab"), (std::vector<TokenId>{3, 3}));
  EXPECT_EQ(encode(vocab, "cab"), (std::vector<TokenId>{2, 3}));  // no "c a" merge
}

TEST(BpeEncode, MapsSpacesToTheByteAlphabetAndKeepsWordsApart) {
  const Vocab vocab = make_small_vocab();
  EXPECT_EQ(encode(vocab, "ab a"), (std::vector<TokenId>{3, 7}));
}

TEST(BpeEncode, DropsBytesWithoutATokenLikeLlamaCpp) {
  const Vocab vocab = make_small_vocab();
  // 'z' has no token and no single-byte token: llama.cpp emits nothing for it.
  EXPECT_EQ(encode(vocab, "zx"), (std::vector<TokenId>{8}));
}

TEST(BpeEncode, IgnoreMergesEmitsAWholeWordThatIsAVocabEntry) {
  Vocab vocab = make_small_vocab();
  vocab.tokens.push_back("cab");
  vocab.token_to_id.emplace("cab", 9);
  EXPECT_EQ(encode(vocab, "cab"), (std::vector<TokenId>{2, 3}));
  vocab.ignore_merges = true;
  EXPECT_EQ(encode(vocab, "cab"), (std::vector<TokenId>{9}));
}

// ---------------------------------------------------------------------------------------------
// llama.cpp's tokenizer tests (tests/test-tokenizer-0 with the models/ggml-vocab-*.gguf files).

std::string ids_to_string(const std::vector<TokenId>& ids) {
  std::string text;
  for (TokenId id : ids) {
    text += ' ';
    text += std::to_string(id);
  }
  return text;
}

std::string pieces_to_string(const Tokenizer& tokenizer, const std::vector<TokenId>& ids) {
  std::string text;
  for (TokenId id : ids) {
    if (id < 0 || id >= tokenizer.n_vocab()) continue;
    text += '[';
    text += tokenizer.token_text(id);
    text += ']';
  }
  return text;
}

// Compares all test cases of `test_name` (data/tokenizer/<test_name>.gguf.inp/.out) using the
// tokenizer of `gguf_path`.
void expect_llama_cpp_test_cases(const std::string& gguf_path, const std::string& test_name) {
  MOA_REQUIRE_ASSET(inp_path, "data/tokenizer/" + test_name + ".gguf.inp");
  MOA_REQUIRE_ASSET(out_path, "data/tokenizer/" + test_name + ".gguf.out");
  const gguf::GgufFile file = gguf::GgufFile::open(gguf_path);
  const Tokenizer tokenizer = Tokenizer::from_gguf(file);
  ASSERT_EQ(tokenizer.kind(), TokenizerKind::kBytePairEncoding);
  const int failures = test::count_vocab_case_failures(
      tokenizer, inp_path, out_path,
      [&](size_t i, const std::string& input, const std::vector<TokenId>& expected,
          const std::vector<TokenId>& got) {
        ADD_FAILURE() << test_name << " test #" << i << " (pre '" << tokenizer.pre_name() << "')\n"
                      << "  input:    '" << input << "'\n"
                      << "  expected:" << ids_to_string(expected) << "  "
                      << pieces_to_string(tokenizer, expected) << "\n"
                      << "  got:     " << ids_to_string(got) << "  "
                      << pieces_to_string(tokenizer, got);
      });
  EXPECT_EQ(failures, 0);
}

void expect_vocab_file_passes(const std::string& vocab_name) {
  MOA_REQUIRE_ASSET(gguf_path, "data/tokenizer/ggml-vocab-" + vocab_name + ".gguf");
  expect_llama_cpp_test_cases(gguf_path, "ggml-vocab-" + vocab_name);
}

TEST(BpeVocab, Gpt2MatchesLlamaCppTestCases) { expect_vocab_file_passes("gpt-2"); }
TEST(BpeVocab, DeepseekCoderMatchesLlamaCppTestCases) {
  expect_vocab_file_passes("deepseek-coder");
}
TEST(BpeVocab, DeepseekLlmMatchesLlamaCppTestCases) { expect_vocab_file_passes("deepseek-llm"); }
TEST(BpeVocab, FalconMatchesLlamaCppTestCases) { expect_vocab_file_passes("falcon"); }
TEST(BpeVocab, MptMatchesLlamaCppTestCases) { expect_vocab_file_passes("mpt"); }

TEST(BpeVocab, LlamaBpeMatchesLlamaCppTestCases) { expect_vocab_file_passes("llama-bpe"); }
TEST(BpeVocab, Qwen2MatchesLlamaCppTestCases) { expect_vocab_file_passes("qwen2"); }

// llama.cpp ships no ggml-vocab-deepseek-r1-qwen.gguf (the shared assets have its .inp/.out only):
// DeepSeek-R1's Qwen distills use Qwen2's vocabulary, so the cases run on the file named by
// MOA_TEST_QWEN2_VOCAB, else on ggml-vocab-qwen2.gguf.
TEST(BpeVocab, DeepseekR1QwenMatchesLlamaCppTestCases) {
  std::string path = test::asset_path("data/tokenizer/ggml-vocab-qwen2.gguf");
  if (const char* from_env = std::getenv("MOA_TEST_QWEN2_VOCAB");
      from_env != nullptr && *from_env != '\0') {
    path = from_env;
  }
  if (path.empty() || !std::filesystem::exists(path)) {
    GTEST_SKIP() << "\n*** MISSING TEST ASSET: a GGUF with the qwen2 tokenizer (set "
                    "MOA_TEST_QWEN2_VOCAB or add "
                 << test::assets_dir() << "/data/tokenizer/ggml-vocab-qwen2.gguf) ***\n";
  }
  expect_llama_cpp_test_cases(path, "ggml-vocab-deepseek-r1-qwen");
}

}  // namespace
}  // namespace moa
