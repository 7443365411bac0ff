// Tokenizers read from GGUF, reproducing llama.cpp token for token: SentencePiece-style
// ("llama": scores, byte fallback) and byte-level BPE ("gpt2": merges + pre-tokenizer regexes).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf_file.h"

namespace moa {

using TokenId = int32_t;

enum class TokenizerKind { kSentencePiece, kBytePairEncoding };

// llama.cpp token types (tokenizer.ggml.token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct Vocab;  // tokenizer/vocab.h

class Tokenizer {
 public:
  // Reads tokenizer.ggml.* keys; errors name the key (e.g. a "llama" vocab without scores or a
  // "gpt2" vocab without merges).
  static Tokenizer from_gguf(const gguf::GgufFile& file);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // add_special: prepend BOS / append EOS as the vocab's flags say.
  // parse_special: text matching a control token (e.g. "<s>") becomes that token.
  std::vector<TokenId> encode(std::string_view text, bool add_special, bool parse_special) const;

  // The bytes a token stands for (llama.cpp's token_to_piece with special=true: "▁" -> " ",
  // byte tokens -> their byte, BPE byte-unicode mapping undone).
  std::string token_to_piece(TokenId id) const;
  // Same, but control / unknown tokens give "" unless `render_special` (llama.cpp special=false).
  std::string token_to_piece(TokenId id, bool render_special) const;
  // Concatenated pieces; skips BOS/EOS/control tokens unless `render_special`. As llama.cpp's
  // detokenize: one leading space of the first token is dropped for SentencePiece vocabs, and
  // BPE vocabs with clean_spaces tidy " ," / " 's" etc.
  std::string decode(std::span<const TokenId> ids, bool render_special = false) const;
  // The raw vocab string (for `moa tokenize` piece display).
  const std::string& token_text(TokenId id) const;

  TokenizerKind kind() const;
  std::string kind_name() const;        // "llama (SentencePiece)" / "gpt2 (byte-level BPE)"
  const std::string& pre_name() const;  // tokenizer.ggml.pre or "default"
  int64_t n_vocab() const;
  int64_t n_merges() const;
  TokenId bos() const;  // -1 when absent
  TokenId eos() const;
  bool add_bos() const;
  bool add_eos() const;
  bool is_control(TokenId id) const;
  bool is_eog(TokenId id) const;  // end of generation: EOS, EOT, <|im_end|>, ...
  std::optional<TokenId> find_token(std::string_view text) const;

 private:
  explicit Tokenizer(std::unique_ptr<Vocab> vocab);
  std::unique_ptr<Vocab> vocab_;
};

// Turns a stream of token ids into text that never ends in the middle of a UTF-8 sequence:
// incomplete trailing bytes are held back until the next token completes them.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool render_special = false);
  std::string push(TokenId id);  // the newly complete text
  std::string flush();           // whatever is held back (invalid bytes become U+FFFD)

 private:
  const Tokenizer* tokenizer_;
  bool render_special_;
  std::string pending_;
};

// Splits a llama.cpp tokenizer test file (.inp) on "\n__ggml_vocab_test__\n".
std::vector<std::string> split_vocab_test_inputs(std::string_view content);

}  // namespace moa
