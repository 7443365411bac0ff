// Internal tokenizer state shared by the SentencePiece and BPE encoders (not part of the API).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace moa {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// llama.cpp's per-token attribute bits (llama_token_attr): derived from token_type, then
// adjusted by the name-based fixes llama.cpp applies at load time (control-looking EOG tokens,
// "unused" control tokens, Phi-3's rstrip on special tokens).
namespace token_attr {
inline constexpr uint32_t kUnknown = 1u << 0;
inline constexpr uint32_t kUnused = 1u << 1;
inline constexpr uint32_t kNormal = 1u << 2;
inline constexpr uint32_t kControl = 1u << 3;
inline constexpr uint32_t kUserDefined = 1u << 4;
inline constexpr uint32_t kByte = 1u << 5;
inline constexpr uint32_t kLstrip = 1u << 7;
inline constexpr uint32_t kRstrip = 1u << 8;
}  // namespace token_attr

struct Vocab {
  TokenizerKind kind = TokenizerKind::kSentencePiece;
  std::string model_name;  // tokenizer.ggml.model
  std::string pre_name = "default";
  std::vector<std::string> tokens;
  std::vector<float> scores;     // SPM; empty for BPE without scores
  std::vector<TokenType> types;  // defaults to kNormal when the key is absent
  std::vector<uint32_t> attrs;   // token_attr bits, one per token
  std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>> token_to_id;
  // BPE: rank of the merge "left right", keyed by left + ' ' + right.
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> merge_rank;
  int64_t n_merges = 0;

  TokenId bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, pad = -1, sep = -1, linefeed = -1;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = true;  // SPM default
  bool clean_spaces = true;
  bool ignore_merges = false;    // llama-bpe
  std::vector<TokenId> eog_ids;  // end-of-generation tokens
  // Control / user-defined / unknown tokens sorted longest first, for special-token partitioning.
  std::vector<TokenId> special_tokens_by_length;

  bool has_attr(TokenId id, uint32_t attr) const {
    return (attrs[static_cast<size_t>(id)] & attr) != 0;
  }
  TokenId find(std::string_view text) const {
    auto it = token_to_id.find(text);
    return it == token_to_id.end() ? -1 : it->second;
  }
};

// Encodes one fragment of plain text (no special tokens inside) and appends the ids. spm_encode
// expects the caller to have added the dummy-prefix space already; it maps ' ' to U+2581 itself.
void spm_encode(const Vocab& vocab, std::string_view text, std::vector<TokenId>& out);
void bpe_encode(const Vocab& vocab, std::string_view text, std::vector<TokenId>& out);

// BPE: the pre-tokenizer's regexes for tokenizer.ggml.pre (throws on an unknown name), and
// the GPT-2 byte <-> unicode-codepoint mapping.
std::vector<std::string> bpe_pretokenizer_regexes(std::string_view pre_name);
std::vector<std::string> bpe_pretokenize(std::string_view pre_name, std::string_view text);
std::string bpe_bytes_to_unicode(std::string_view bytes);
std::string bpe_unicode_to_bytes(std::string_view text);

}  // namespace moa
