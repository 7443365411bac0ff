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

struct Vocab {
  TokenizerKind kind = TokenizerKind::kSentencePiece;
  std::string model_name;  // tokenizer.ggml.model
  std::string pre_name = "default";
  std::vector<std::string> tokens;
  std::vector<float> scores;      // SPM; empty for BPE without scores
  std::vector<TokenType> types;   // defaults to kNormal when the key is absent
  std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>> token_to_id;
  // BPE: rank of the merge "left right", keyed by left + ' ' + right.
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> merge_rank;
  int64_t n_merges = 0;

  TokenId bos = -1, eos = -1, eot = -1, unk = -1, pad = -1, sep = -1, linefeed = -1;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = true;  // SPM default
  bool clean_spaces = true;
  bool ignore_merges = false;    // llama-bpe
  std::vector<TokenId> eog_ids;  // end-of-generation tokens
  // Control / user-defined tokens sorted longest first, for special-token partitioning.
  std::vector<TokenId> special_tokens_by_length;
};

// Encodes one fragment of plain text (no special tokens inside) and appends the ids.
void spm_encode(const Vocab& vocab, std::string_view text, std::vector<TokenId>& out);
void bpe_encode(const Vocab& vocab, std::string_view text, std::vector<TokenId>& out);

// BPE: the pre-tokenizer's regexes for tokenizer.ggml.pre (throws on an unknown name), and
// the GPT-2 byte <-> unicode-codepoint mapping.
std::vector<std::string> bpe_pretokenizer_regexes(std::string_view pre_name);
std::vector<std::string> bpe_pretokenize(std::string_view pre_name, std::string_view text);
std::string bpe_bytes_to_unicode(std::string_view bytes);
std::string bpe_unicode_to_bytes(std::string_view text);

}  // namespace moa
