// Pre-tokenizer splitting for the llama.cpp pre-tokenizer names: digit grouping, contractions,
// whitespace runs, newlines, llama.cpp's category quirks, and a cross-check of the collapsed
// emulation against the original Unicode regexes on llama.cpp's tokenizer test inputs.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string>
#include <vector>

#include "support/assets.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

namespace moa {
namespace {

using Words = std::vector<std::string>;

TEST(BpePretokenizer, Gpt2SplitsContractionsWordsNumbersAndPunctuation) {
  EXPECT_EQ(bpe_pretokenize("gpt-2", "I've 12345 apples!!"),
            (Words{"I", "'ve", " 12345", " apples", "!!"}));
}

TEST(BpePretokenizer, Qwen2SplitsDigitsOneByOne) {
  EXPECT_EQ(bpe_pretokenize("qwen2", "x 12345"), (Words{"x", " ", "1", "2", "3", "4", "5"}));
}

TEST(BpePretokenizer, Llama3GroupsDigitsByThree) {
  EXPECT_EQ(bpe_pretokenize("llama-bpe", "12345678"), (Words{"123", "456", "78"}));
}

TEST(BpePretokenizer, StarcoderSplitsDigitsBeforeTheGpt2Regex) {
  EXPECT_EQ(bpe_pretokenize("starcoder", "a 123"), (Words{"a", " ", "1", "2", "3"}));
}

TEST(BpePretokenizer, Llama3ContractionsIgnoreCaseButGpt2DoesNot) {
  EXPECT_EQ(bpe_pretokenize("llama-bpe", "'RE 'Ve"), (Words{"'RE", " '", "Ve"}));
  EXPECT_EQ(bpe_pretokenize("gpt-2", "'RE 're"), (Words{"'", "RE", " '", "re"}));
  EXPECT_EQ(bpe_pretokenize("gpt-2", "'re"), (Words{"'re"}));
}

TEST(BpePretokenizer, WhitespaceRunLeavesItsLastSpaceToTheNextWord) {
  EXPECT_EQ(bpe_pretokenize("gpt-2", "a   b"), (Words{"a", "  ", " b"}));
  EXPECT_EQ(bpe_pretokenize("qwen2", "a   b"), (Words{"a", "  ", " b"}));
  EXPECT_EQ(bpe_pretokenize("gpt-2", "a   "), (Words{"a", "   "}));
}

TEST(BpePretokenizer, NewlinesEndTheirWhitespaceRunInLlama3) {
  EXPECT_EQ(bpe_pretokenize("llama-bpe", "a \n\n b"), (Words{"a", " \n\n", " b"}));
  EXPECT_EQ(bpe_pretokenize("llama-bpe", "x!\n\ny"), (Words{"x", "!\n\n", "y"}));
  EXPECT_EQ(bpe_pretokenize("gpt-2", "a\n\nb"), (Words{"a", "\n", "\n", "b"}));
}

TEST(BpePretokenizer, NonAsciiLettersDigitsAndSpacesUseUnicodeCategories) {
  EXPECT_EQ(bpe_pretokenize("qwen2", "нещо на"), (Words{"нещо", " на"}));
  // U+0663 ARABIC-INDIC DIGIT THREE is \p{N}; U+3000 IDEOGRAPHIC SPACE is whitespace.
  EXPECT_EQ(bpe_pretokenize("qwen2", "\u0663\u0663"), (Words{"\u0663", "\u0663"}));
  EXPECT_EQ(bpe_pretokenize("gpt-2", "a\u3000\u3000b"), (Words{"a", "\u3000", "\u3000", "b"}));
}

TEST(BpePretokenizer, DeepseekLlmPunctuationRangeSplitsAsciiLettersOffAccentedOnes) {
  // llama.cpp applies "\s?[!-/:-~...]+" after the letter regex, and ':'..'~' spans A-Z and a-z.
  EXPECT_EQ(bpe_pretokenize("deepseek-llm", "Führer"), (Words{"F", "ü", "hrer"}));
}

TEST(BpePretokenizer, DefaultGroupsDigitRunsOfThree) {
  EXPECT_EQ(bpe_pretokenize("default", "1234567"), (Words{"123", "456", "7"}));
}

TEST(BpePretokenizer, InvalidUtf8BecomesReplacementCharacters) {
  EXPECT_EQ(bpe_pretokenize("gpt-2", std::string("a\xff", 2)), (Words{"a", "\uFFFD"}));
}

TEST(BpePretokenizer, EmptyTextGivesNoWords) { EXPECT_TRUE(bpe_pretokenize("qwen2", "").empty()); }

TEST(BpePretokenizer, RejectsUnknownNameListingTheSupportedOnes) {
  try {
    bpe_pretokenizer_regexes("no-such-pre");
    FAIL() << "expected moa::Error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("tokenizer.ggml.pre 'no-such-pre' is not supported"), std::string::npos);
    EXPECT_NE(message.find("qwen2"), std::string::npos);
    EXPECT_NE(message.find("llama-bpe"), std::string::npos);
  }
}

TEST(BpePretokenizer, EveryFamilyCompilesAndLosesNoText) {
  const std::string text =
      "Hello, y'all! 'RE\t\t 12345 3.14 нещо 我想在apple工作 😁 ～ ~ \u3000x\r\n\n  end  ";
  for (const char* name : {"default",
                           "llama3",
                           "llama-bpe",
                           "dbrx",
                           "smaug-bpe",
                           "deepseek-llm",
                           "deepseek-v3",
                           "deepseek-coder",
                           "falcon",
                           "starcoder",
                           "refact",
                           "command-r",
                           "smollm",
                           "gpt-2",
                           "mpt",
                           "phi-2",
                           "roberta-bpe",
                           "qwen2",
                           "deepseek-r1-qwen",
                           "stablelm2",
                           "poro-chat",
                           "viking",
                           "tekken",
                           "chameleon",
                           "gpt-4o",
                           "chatglm-bpe",
                           "exaone",
                           "olmo",
                           "megrez"}) {
    std::string joined;
    for (const std::string& word : bpe_pretokenize(name, text)) {
      EXPECT_FALSE(word.empty()) << name;
      joined += word;
    }
    EXPECT_EQ(joined, text) << name;
  }
}

// Runs `pattern` with full Unicode semantics (PCRE2 UTF + UCP) the way Hugging Face's
// tokenizers do: matches and the gaps between them become words.
Words split_with_unicode_regex(const std::string& pattern, const std::string& text) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  EXPECT_NE(code, nullptr);
  if (code == nullptr) return {};
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(code, nullptr);
  Words words;
  size_t pos = 0;
  while (pos < text.size() && pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()),
                                          text.size(), pos, 0, match, nullptr) > 0) {
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
    if (ovector[0] > pos) words.push_back(text.substr(pos, ovector[0] - pos));
    words.push_back(text.substr(ovector[0], ovector[1] - ovector[0]));
    pos = ovector[1];
  }
  if (pos < text.size()) words.push_back(text.substr(pos));
  pcre2_match_data_free(match);
  pcre2_code_free(code);
  return words;
}

void expect_same_split_as_unicode_regex(const char* pre_name, const std::string& pattern) {
  MOA_REQUIRE_ASSET(inp_path, "data/tokenizer/ggml-vocab-qwen2.gguf.inp");
  const std::vector<std::string> inputs = split_vocab_test_inputs(::moa::test::read_file(inp_path));
  ASSERT_EQ(inputs.size(), 46u);
  for (size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_EQ(bpe_pretokenize(pre_name, inputs[i]), split_with_unicode_regex(pattern, inputs[i]))
        << pre_name << " test #" << i << ": '" << inputs[i] << "'";
  }
}

TEST(BpePretokenizer, Qwen2MatchesTheTokenizerJsonRegexOnLlamaCppTestInputs) {
  expect_same_split_as_unicode_regex(
      "qwen2",
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
      "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+");
}

TEST(BpePretokenizer, Llama3MatchesTheTokenizerJsonRegexOnLlamaCppTestInputs) {
  expect_same_split_as_unicode_regex(
      "llama-bpe",
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
      "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+");
}

TEST(BpePretokenizer, Gpt2MatchesTheOriginalRegexOnLlamaCppTestInputs) {
  expect_same_split_as_unicode_regex(
      "gpt-2",
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+");
}

}  // namespace
}  // namespace moa
