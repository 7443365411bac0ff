// Tokenizer front end, following llama.cpp's llama_vocab::impl::tokenize / token_to_piece /
// detokenize: special tokens are cut out of the text first (longest first), the plain fragments
// go to the SentencePiece or BPE encoder, and decoding maps tokens back to bytes. Also the
// streaming decoder and the reader for llama.cpp's tokenizer test files.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>

#include "tokenizer/utf8.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

namespace moa {
namespace {

// A piece of the input: either plain text (token < 0) or one special token.
struct Fragment {
  TokenId token = -1;
  size_t offset = 0;
  size_t length = 0;
};

bool is_c_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// Splits one text fragment at every occurrence of `special`, dropping whitespace next to it
// where the token's lstrip / rstrip attributes say so.
void split_fragment(const Vocab& vocab, std::string_view text, TokenId special, Fragment fragment,
                    std::vector<Fragment>& out) {
  const std::string& needle = vocab.tokens[static_cast<size_t>(special)];
  const bool lstrip = vocab.has_attr(special, token_attr::kLstrip);
  const bool rstrip = vocab.has_attr(special, token_attr::kRstrip);
  const std::string_view searched = text.substr(0, fragment.offset + fragment.length);
  size_t begin = fragment.offset;
  const size_t end = searched.size();
  while (begin < end) {
    const size_t match = searched.find(needle, begin);
    if (match == std::string_view::npos) break;
    size_t left_end = match;
    if (lstrip) {
      while (left_end > begin && is_c_space(text[left_end - 1])) --left_end;
    }
    if (left_end > begin) out.push_back({-1, begin, left_end - begin});
    out.push_back({special, 0, 0});
    begin = match + needle.size();
    if (rstrip) {
      while (begin < end && is_c_space(text[begin])) ++begin;
    }
  }
  if (begin < end) out.push_back({-1, begin, end - begin});
}

std::vector<Fragment> partition_special_tokens(const Vocab& vocab, std::string_view text,
                                               bool parse_special) {
  std::vector<Fragment> fragments;
  if (text.empty()) return fragments;
  fragments.push_back({-1, 0, text.size()});
  for (TokenId special : vocab.special_tokens_by_length) {
    // Without parse_special only user-defined tokens are matched (as HF tokenizers do).
    if (!parse_special && vocab.has_attr(special, token_attr::kControl | token_attr::kUnknown))
      continue;
    std::vector<Fragment> next;
    next.reserve(fragments.size());
    for (const Fragment& fragment : fragments) {
      if (fragment.token >= 0) {
        next.push_back(fragment);
      } else {
        split_fragment(vocab, text, special, fragment, next);
      }
    }
    fragments = std::move(next);
  }
  return fragments;
}

void encode_spm(const Vocab& vocab, std::string_view text, const std::vector<Fragment>& fragments,
                std::vector<TokenId>& out) {
  bool prev_is_special = true;  // the dummy space prefix goes at the start and after specials
  for (const Fragment& fragment : fragments) {
    if (fragment.token >= 0) {
      out.push_back(fragment.token);
      prev_is_special = true;
      continue;
    }
    std::string piece;
    if (vocab.add_space_prefix && prev_is_special) piece = " ";
    piece += text.substr(fragment.offset, fragment.length);
    spm_encode(vocab, piece, out);
    prev_is_special = false;
  }
}

void encode_bpe(const Vocab& vocab, std::string_view text, const std::vector<Fragment>& fragments,
                std::vector<TokenId>& out) {
  for (const Fragment& fragment : fragments) {
    if (fragment.token >= 0) {
      out.push_back(fragment.token);
    } else {
      bpe_encode(vocab, text.substr(fragment.offset, fragment.length), out);
    }
  }
}

// SentencePiece pieces use U+2581 for a space.
std::string unescape_spaces(std::string_view text) {
  constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t next = text.find(kSpaceMarker, pos);
    out.append(
        text.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos));
    if (next == std::string_view::npos) break;
    out += ' ';
    pos = next + kSpaceMarker.size();
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return 0;
}

// "<0xXX>" -> the byte (llama.cpp reads the two hex digits after "<0x").
char byte_of_byte_token(std::string_view text) {
  if (text.size() < 5) return 0;
  return static_cast<char>(hex_digit(text[3]) * 16 + hex_digit(text[4]));
}

// llama.cpp's token_to_piece: `special` renders control / unknown tokens as their text.
std::string piece_of(const Vocab& vocab, TokenId id, bool special) {
  if (id < 0 || id >= static_cast<TokenId>(vocab.tokens.size())) {
    fail("tokenizer: token id {} is outside the vocab (size {})", id, vocab.tokens.size());
  }
  const std::string& text = vocab.tokens[static_cast<size_t>(id)];
  constexpr uint32_t kSpecial = token_attr::kUnknown | token_attr::kControl;
  if (!special && vocab.has_attr(id, kSpecial)) return {};
  if (vocab.has_attr(id, kSpecial | token_attr::kUserDefined)) return text;
  if (vocab.has_attr(id, token_attr::kNormal)) {
    if (vocab.kind == TokenizerKind::kBytePairEncoding) return bpe_unicode_to_bytes(text);
    return unescape_spaces(text);
  }
  if (vocab.has_attr(id, token_attr::kByte)) return std::string(1, byte_of_byte_token(text));
  return {};
}

// llama.cpp's detokenize post-pass for most BPE vocabs, three in-place passes over the bytes:
// " ?" " !" " ." " ," lose the space; " ' " becomes "'"; " 's" " 'm" " 're" " 've" lose the space.
std::string clean_up_spaces(std::string text) {
  size_t total = text.empty() ? 0 : 1;
  const size_t n1 = text.size();
  for (size_t i = 1; i < n1; ++i) {
    const char x = text[i];
    if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) --total;
    text[total++] = x;
  }
  const size_t n2 = total;
  total = n2 == 0 ? 0 : 1;
  for (size_t i = 1; i < n2; ++i) {
    const char x = text[i];
    if (x == '\'' && i + 1 < n2 && text[i - 1] == ' ' && text[i + 1] == ' ') {
      --total;
      text[++i] = '\0';  // the space after is dropped and no longer counts as a space
    }
    text[total++] = x;
  }
  const size_t n3 = total;
  total = n3 == 0 ? 0 : 1;
  for (size_t i = 1; i < n3; ++i) {
    const char x = text[i];
    if (text[i - 1] == ' ' && x == '\'' && i + 1 < n3) {
      const char x1 = text[i + 1];
      const char x2 = i + 2 < n3 ? text[i + 2] : '\0';
      if (x1 == 's' || x1 == 'm' || (x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) --total;
    }
    text[total++] = x;
  }
  text.resize(total);
  return text;
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Vocab> vocab) : vocab_(std::move(vocab)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  const Vocab& vocab = *vocab_;
  const std::vector<Fragment> fragments = partition_special_tokens(vocab, text, parse_special);
  std::vector<TokenId> out;
  if (add_special && vocab.add_bos) out.push_back(vocab.bos);
  if (vocab.kind == TokenizerKind::kSentencePiece) {
    encode_spm(vocab, text, fragments, out);
  } else {
    encode_bpe(vocab, text, fragments, out);
  }
  if (add_special && vocab.add_eos) out.push_back(vocab.eos);
  return out;
}

std::string Tokenizer::token_to_piece(TokenId id) const { return piece_of(*vocab_, id, true); }

std::string Tokenizer::token_to_piece(TokenId id, bool render_special) const {
  return piece_of(*vocab_, id, render_special);
}

std::string Tokenizer::decode(std::span<const TokenId> ids, bool render_special) const {
  const Vocab& vocab = *vocab_;
  std::string text;
  // llama.cpp drops one leading space of the first token only (so "<s> Hello" keeps its space).
  bool strip_leading_space = vocab.add_space_prefix;
  for (TokenId id : ids) {
    std::string piece = piece_of(vocab, id, render_special);
    if (strip_leading_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    strip_leading_space = false;
    text += piece;
  }
  return vocab.clean_spaces ? clean_up_spaces(text) : text;
}

const std::string& Tokenizer::token_text(TokenId id) const {
  if (id < 0 || id >= static_cast<TokenId>(vocab_->tokens.size())) {
    fail("tokenizer: token id {} is outside the vocab (size {})", id, vocab_->tokens.size());
  }
  return vocab_->tokens[static_cast<size_t>(id)];
}

TokenizerKind Tokenizer::kind() const { return vocab_->kind; }

std::string Tokenizer::kind_name() const {
  return vocab_->kind == TokenizerKind::kSentencePiece ? "llama (SentencePiece)"
                                                       : "gpt2 (byte-level BPE)";
}

const std::string& Tokenizer::pre_name() const { return vocab_->pre_name; }
int64_t Tokenizer::n_vocab() const { return static_cast<int64_t>(vocab_->tokens.size()); }
int64_t Tokenizer::n_merges() const { return vocab_->n_merges; }
TokenId Tokenizer::bos() const { return vocab_->bos; }
TokenId Tokenizer::eos() const { return vocab_->eos; }
bool Tokenizer::add_bos() const { return vocab_->add_bos; }
bool Tokenizer::add_eos() const { return vocab_->add_eos; }

bool Tokenizer::is_control(TokenId id) const {
  return id >= 0 && id < n_vocab() && vocab_->has_attr(id, token_attr::kControl);
}

bool Tokenizer::is_eog(TokenId id) const {
  return std::find(vocab_->eog_ids.begin(), vocab_->eog_ids.end(), id) != vocab_->eog_ids.end();
}

std::optional<TokenId> Tokenizer::find_token(std::string_view text) const {
  const TokenId id = vocab_->find(text);
  return id >= 0 ? std::optional<TokenId>(id) : std::nullopt;
}

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer, bool render_special)
    : tokenizer_(&tokenizer), render_special_(render_special) {}

std::string StreamingDecoder::push(TokenId id) {
  pending_ += tokenizer_->token_to_piece(id, render_special_);
  const size_t keep = utf8::incomplete_tail_length(pending_);
  std::string ready = utf8::sanitize(std::string_view(pending_).substr(0, pending_.size() - keep));
  pending_.erase(0, pending_.size() - keep);
  return ready;
}

std::string StreamingDecoder::flush() {
  std::string rest = utf8::sanitize(pending_);
  pending_.clear();
  return rest;
}

std::vector<std::string> split_vocab_test_inputs(std::string_view content) {
  constexpr std::string_view kSeparator = "\n__ggml_vocab_test__\n";
  std::vector<std::string> tests;
  size_t pos = 0;
  while (pos < content.size()) {
    const size_t next = content.find(kSeparator, pos);
    if (next == std::string_view::npos) break;
    tests.emplace_back(content.substr(pos, next - pos));
    pos = next + kSeparator.size();
  }
  return tests;
}

}  // namespace moa
