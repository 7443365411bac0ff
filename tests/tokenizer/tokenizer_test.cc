// Unit tests of the tokenizer front end and the SentencePiece encoder on tiny vocabs built in
// memory with GgufWriter: loading errors, special-token partitioning, merge order, byte
// fallback, decoding, the streaming decoder, UTF-8 helpers and the .inp splitter.
#include "tokenizer/tokenizer.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace moa {
namespace {

using gguf::GgufFile;
using gguf::GgufWriter;
using gguf::Value;

struct TinyToken {
  std::string text;
  float score;
  TokenType type;
};

// <unk> <s> </s>, the 256 byte tokens, then `pieces` (ids from 259).
std::vector<TinyToken> spm_tokens(const std::vector<TinyToken>& pieces) {
  std::vector<TinyToken> tokens = {{"<unk>", 0, TokenType::kUnknown},
                                   {"<s>", 0, TokenType::kControl},
                                   {"</s>", 0, TokenType::kControl}};
  for (int b = 0; b < 256; ++b)
    tokens.push_back({fmt::format("<0x{:02X}>", b), 0, TokenType::kByte});
  tokens.insert(tokens.end(), pieces.begin(), pieces.end());
  return tokens;
}

GgufWriter spm_writer(const std::vector<TinyToken>& tokens) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.ggml.model", "llama");
  std::vector<std::string> texts;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (const TinyToken& t : tokens) {
    texts.push_back(t.text);
    scores.push_back(t.score);
    types.push_back(static_cast<int32_t>(t.type));
  }
  w.set("tokenizer.ggml.tokens", Value::string_array(texts));
  w.set("tokenizer.ggml.scores", Value::f32_array(scores));
  w.set("tokenizer.ggml.token_type", Value::i32_array(types));
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  return w;
}

GgufFile parse(const GgufWriter& w) { return GgufFile::parse(w.serialize(), "tiny.gguf"); }

const std::string kSpace = "\xE2\x96\x81";  // ▁

// ids 259.. : ▁ ▁H e l o ▁Hello ll ▁He ▁w or ld ▁world <user> <|im_end|> llo w r orld H
std::vector<TinyToken> hello_pieces() {
  return {{kSpace, -1, TokenType::kNormal},       {kSpace + "H", -2, TokenType::kNormal},
          {"e", -3, TokenType::kNormal},          {"l", -3, TokenType::kNormal},
          {"o", -3, TokenType::kNormal},          {kSpace + "Hello", -4, TokenType::kNormal},
          {"ll", -5, TokenType::kNormal},         {kSpace + "He", -2.5f, TokenType::kNormal},
          {kSpace + "w", -7, TokenType::kNormal}, {"or", -8, TokenType::kNormal},
          {"ld", -9, TokenType::kNormal},         {kSpace + "world", -10, TokenType::kNormal},
          {"<user>", 0, TokenType::kUserDefined}, {"<|im_end|>", 0, TokenType::kControl},
          {"llo", -4.2f, TokenType::kNormal},     {"w", -3, TokenType::kNormal},
          {"r", -3, TokenType::kNormal},          {"orld", -9.5f, TokenType::kNormal},
          {"H", -3, TokenType::kNormal}};
}

Tokenizer hello_tokenizer() {
  return Tokenizer::from_gguf(parse(spm_writer(spm_tokens(hello_pieces()))));
}

constexpr TokenId kHello = 264, kWorld = 270, kUser = 271, kImEnd = 272, kSpaceTok = 259;

std::string error_of(const GgufWriter& w) {
  try {
    Tokenizer::from_gguf(parse(w));
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TokenizerLoad, ReadsSentencePieceDefaults) {
  const Tokenizer tok = hello_tokenizer();
  EXPECT_EQ(tok.kind(), TokenizerKind::kSentencePiece);
  EXPECT_EQ(tok.kind_name(), "llama (SentencePiece)");
  EXPECT_EQ(tok.pre_name(), "default");
  EXPECT_EQ(tok.n_vocab(), 259 + static_cast<int64_t>(hello_pieces().size()));
  EXPECT_EQ(tok.bos(), 1);
  EXPECT_EQ(tok.eos(), 2);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_FALSE(tok.add_eos());
  EXPECT_TRUE(tok.is_control(1));
  EXPECT_FALSE(tok.is_control(kHello));
  EXPECT_EQ(tok.find_token(kSpace + "Hello"), kHello);
  EXPECT_FALSE(tok.find_token("nope").has_value());
}

TEST(TokenizerLoad, RejectsUnsupportedModel) {
  GgufWriter w = spm_writer(spm_tokens({}));
  w.set_string("tokenizer.ggml.model", "bert");
  const std::string message = error_of(w);
  EXPECT_NE(message.find("tokenizer.ggml.model 'bert' is not supported (supported: llama, gpt2)"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("tiny.gguf"), std::string::npos) << message;
}

TEST(TokenizerLoad, RejectsLlamaVocabWithoutScores) {
  GgufWriter w = spm_writer(spm_tokens({}));
  w.remove("tokenizer.ggml.scores");
  const std::string message = error_of(w);
  EXPECT_NE(message.find("tokenizer.ggml.scores"), std::string::npos) << message;
}

TEST(TokenizerLoad, RejectsGpt2VocabWithoutMerges) {
  GgufWriter w = spm_writer(spm_tokens({}));
  w.set_string("tokenizer.ggml.model", "gpt2");
  const std::string message = error_of(w);
  EXPECT_NE(message.find("tokenizer.ggml.merges"), std::string::npos) << message;
}

GgufWriter bpe_writer(const std::string& pre) {
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", pre);
  std::vector<std::string> tokens;
  for (char c = 'a'; c <= 't'; ++c) tokens.emplace_back(1, c);
  tokens.push_back("ab");
  w.set("tokenizer.ggml.tokens", Value::string_array(tokens));
  w.set("tokenizer.ggml.merges", Value::string_array({"a b"}));
  return w;
}

TEST(TokenizerLoad, SetsBpeFlagsFromThePreTokenizer) {
  const Tokenizer gpt2 = Tokenizer::from_gguf(parse(bpe_writer("gpt-2")));
  EXPECT_EQ(gpt2.kind(), TokenizerKind::kBytePairEncoding);
  EXPECT_EQ(gpt2.kind_name(), "gpt2 (byte-level BPE)");
  EXPECT_EQ(gpt2.pre_name(), "gpt-2");
  EXPECT_EQ(gpt2.n_merges(), 1);
  EXPECT_EQ(gpt2.bos(), 11);  // llama.cpp's BPE default
  EXPECT_FALSE(gpt2.add_bos());
  const Tokenizer llama3 = Tokenizer::from_gguf(parse(bpe_writer("llama-bpe")));
  EXPECT_TRUE(llama3.add_bos());
  EXPECT_EQ(llama3.encode("", true, false), (std::vector<TokenId>{11}));
}

TEST(TokenizerLoad, RejectsUnknownBpePreTokenizer) {
  const std::string message = error_of(bpe_writer("no-such-pre"));
  EXPECT_NE(message.find("no-such-pre"), std::string::npos) << message;
  EXPECT_NE(message.find("tiny.gguf"), std::string::npos) << message;
}

TEST(TokenizerLoad, RejectsMissingTokenizerAndDuplicateTokens) {
  GgufWriter no_model = spm_writer(spm_tokens({}));
  no_model.remove("tokenizer.ggml.model");
  EXPECT_NE(error_of(no_model).find("tokenizer.ggml.model"), std::string::npos);
  GgufWriter duplicate =
      spm_writer(spm_tokens({{"a", 0, TokenType::kNormal}, {"a", 0, TokenType::kNormal}}));
  EXPECT_NE(error_of(duplicate).find("tokenizer.ggml.tokens"), std::string::npos)
      << error_of(duplicate);
}

TEST(TokenizerLoad, IgnoresOutOfRangeSpecialIdsAndHonoursFlags) {
  GgufWriter w = spm_writer(spm_tokens(hello_pieces()));
  w.set_u32("tokenizer.ggml.seperator_token_id", 4294967295u);
  w.set_u32("tokenizer.ggml.eos_token_id", 100000);  // out of range: default 2 stays
  w.set_bool("tokenizer.ggml.add_bos_token", false);
  w.set_bool("tokenizer.ggml.add_eos_token", true);
  const Tokenizer tok = Tokenizer::from_gguf(parse(w));
  EXPECT_EQ(tok.eos(), 2);
  EXPECT_EQ(tok.encode("Hello", true, false), (std::vector<TokenId>{kHello, 2}));
}

TEST(TokenizerLoad, MarksEndOfGenerationTokens) {
  const Tokenizer tok = hello_tokenizer();
  EXPECT_TRUE(tok.is_eog(2));
  EXPECT_TRUE(tok.is_eog(kImEnd));
  EXPECT_FALSE(tok.is_eog(1));
  EXPECT_FALSE(tok.is_eog(kHello));
}

TEST(SpmEncode, AddsDummyPrefixAndBos) {
  const Tokenizer tok = hello_tokenizer();
  EXPECT_EQ(tok.encode("Hello world", false, false), (std::vector<TokenId>{kHello, kWorld}));
  EXPECT_EQ(tok.encode("Hello world", true, false), (std::vector<TokenId>{1, kHello, kWorld}));
  EXPECT_EQ(tok.encode("", true, false), (std::vector<TokenId>{1}));
  EXPECT_TRUE(tok.encode("", false, false).empty());
  EXPECT_EQ(tok.encode(" ", false, false), (std::vector<TokenId>{kSpaceTok, kSpaceTok}));
}

TEST(SpmEncode, FallsBackToBytesForUnknownCharacters) {
  const Tokenizer tok = hello_tokenizer();
  // "é" = C3 A9; byte token <0xXX> has id 3 + XX.
  EXPECT_EQ(tok.encode("\xC3\xA9", false, false),
            (std::vector<TokenId>{kSpaceTok, 3 + 0xC3, 3 + 0xA9}));
}

TEST(SpmEncode, MergesHighestScoringPairFirst) {
  // Without a dummy prefix: "abc" has pairs ab and bc; the better-scoring one wins.
  auto make = [](float ab, float bc) {
    GgufWriter w = spm_writer(spm_tokens({{"a", -1, TokenType::kNormal},
                                          {"b", -1, TokenType::kNormal},
                                          {"c", -1, TokenType::kNormal},
                                          {"ab", ab, TokenType::kNormal},
                                          {"bc", bc, TokenType::kNormal}}));
    w.set_bool("tokenizer.ggml.add_space_prefix", false);
    return Tokenizer::from_gguf(parse(w));
  };
  EXPECT_EQ(make(-1.0f, -0.5f).encode("abc", false, false), (std::vector<TokenId>{259, 263}));
  EXPECT_EQ(make(-0.5f, -1.0f).encode("abc", false, false), (std::vector<TokenId>{262, 261}));
  // Equal scores: the leftmost pair is merged first.
  EXPECT_EQ(make(-1.0f, -1.0f).encode("abc", false, false), (std::vector<TokenId>{262, 261}));
}

TEST(SpecialTokens, ParseSpecialControlsMatchingOfControlTokens) {
  const Tokenizer tok = hello_tokenizer();
  const std::vector<TokenId> parsed = tok.encode("<s>Hello", false, true);
  EXPECT_EQ(parsed, (std::vector<TokenId>{1, kHello}));
  const std::vector<TokenId> plain = tok.encode("<s>Hello", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_EQ(tok.decode(plain), "<s>Hello");
  EXPECT_EQ(tok.encode("Hello<|im_end|>", false, true), (std::vector<TokenId>{kHello, kImEnd}));
}

TEST(SpecialTokens, UserDefinedTokensMatchEvenWithoutParseSpecial) {
  const Tokenizer tok = hello_tokenizer();
  // After a special token the next fragment gets the dummy space prefix again.
  EXPECT_EQ(tok.encode("Hello<user>world", false, false),
            (std::vector<TokenId>{kHello, kUser, kWorld}));
  EXPECT_EQ(tok.encode("<user>", true, false), (std::vector<TokenId>{1, kUser}));
}

TEST(Decode, RoundTripsTextAndSkipsControlTokens) {
  const Tokenizer tok = hello_tokenizer();
  for (const std::string text : {"Hello world", "  Hello\n\tworld é€😀 ", "x"}) {
    EXPECT_EQ(tok.decode(tok.encode(text, false, false)), text);
  }
  const std::vector<TokenId> with_bos = tok.encode("Hello world", true, false);
  EXPECT_EQ(tok.decode(with_bos), " Hello world");  // llama.cpp keeps the space after BOS
  EXPECT_EQ(tok.decode(with_bos, true), "<s> Hello world");
  EXPECT_EQ(tok.token_to_piece(kHello), " Hello");
  EXPECT_EQ(tok.token_to_piece(3 + 0x41), "A");
  EXPECT_EQ(tok.token_to_piece(1), "<s>");
  EXPECT_EQ(tok.token_to_piece(1, false), "");
  EXPECT_EQ(tok.token_text(kHello), kSpace + "Hello");
  EXPECT_THROW(tok.token_to_piece(100000), Error);
}

TEST(StreamingDecoder, HoldsBackSplitMultiByteCharacters) {
  const Tokenizer tok = hello_tokenizer();
  StreamingDecoder decoder(tok);
  // "€" = E2 82 AC arrives as three byte tokens.
  EXPECT_EQ(decoder.push(kHello), " Hello");
  EXPECT_EQ(decoder.push(3 + 0xE2), "");
  EXPECT_EQ(decoder.push(3 + 0x82), "");
  EXPECT_EQ(decoder.push(3 + 0xAC), "\xE2\x82\xAC");
  EXPECT_EQ(decoder.push(1), "");  // control token, not rendered
  EXPECT_EQ(decoder.flush(), "");
}

TEST(StreamingDecoder, FlushReplacesUnfinishedAndInvalidBytes) {
  const Tokenizer tok = hello_tokenizer();
  StreamingDecoder decoder(tok);
  EXPECT_EQ(decoder.push(3 + 0xF0), "");
  EXPECT_EQ(decoder.push(3 + 0x9F), "");
  EXPECT_EQ(decoder.flush(), "\xEF\xBF\xBD");  // one U+FFFD for the cut-short character
  // A byte that can never start a character is replaced at once.
  EXPECT_EQ(decoder.push(3 + 0xFF), "\xEF\xBF\xBD");
  EXPECT_EQ(decoder.push(kHello), " Hello");
}

TEST(Utf8, FindsUnfinishedTailsAndSanitizes) {
  EXPECT_EQ(utf8::incomplete_tail_length("ab\xE2\x82"), 2u);
  EXPECT_EQ(utf8::incomplete_tail_length("ab\xE2\x82\xAC"), 0u);
  EXPECT_EQ(utf8::incomplete_tail_length("\xF0\x9F\x98"), 3u);
  EXPECT_EQ(utf8::incomplete_tail_length("\xC0"), 0u);      // never valid
  EXPECT_EQ(utf8::incomplete_tail_length("\xED\xA0"), 0u);  // surrogate
  EXPECT_EQ(utf8::sanitize("a\x80z"), "a\xEF\xBF\xBDz");
  EXPECT_EQ(utf8::sanitize("a\xE2\x82z\xE2"), "a\xEF\xBF\xBDz\xEF\xBF\xBD");
  EXPECT_TRUE(utf8::is_valid("h\xC3\xA9llo \xF0\x9F\x98\x80"));
  EXPECT_FALSE(utf8::is_valid("\xC1\xBF"));  // overlong
  EXPECT_EQ(utf8::decode_all("\xE2\x82\xAC"), (std::vector<char32_t>{0x20AC}));
  EXPECT_EQ(utf8::encode(0x1F600), "\xF0\x9F\x98\x80");
  EXPECT_EQ(utf8::sequence_length(0xF0), 4u);
  EXPECT_EQ(utf8::sequence_length(0x80), 1u);
}

TEST(VocabTestFiles, SplitsOnTheFullSeparatorOnly) {
  const std::string content =
      "Hello\n__ggml_vocab_test__\n\n__ggml_vocab_test__\n\n\n__ggml_vocab_test__\n"
      "a\n__ggml_vocab_test__ b\n__ggml_vocab_test__\n";
  EXPECT_EQ(split_vocab_test_inputs(content),
            (std::vector<std::string>{"Hello", "", "\n", "a\n__ggml_vocab_test__ b"}));
  EXPECT_TRUE(split_vocab_test_inputs("").empty());
}

}  // namespace
}  // namespace moa
