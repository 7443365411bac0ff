// SentencePiece-style encoder for "llama" vocabs, reproducing llama.cpp's llm_tokenizer_spm: the
// text is split into UTF-8 characters, adjacent pairs that form a vocab entry are merged
// best-score first (ties: leftmost), and each final symbol is emitted as its token, re-split
// along the merges that built it, or as byte tokens <0xXX> when nothing else fits.
#include <map>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/utf8.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

namespace moa {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

// A run of bytes in the text; merged symbols absorb their right neighbour (n becomes 0 there).
struct Symbol {
  int prev = -1;
  int next = -1;
  size_t offset = 0;
  size_t n = 0;
};

struct Bigram {
  int left = 0;
  int right = 0;
  float score = 0.0f;
  size_t size = 0;
};

// Priority order: higher score first, then the leftmost pair (llama.cpp's comparator).
struct BigramLowerPriority {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

class SpmSession {
 public:
  SpmSession(const Vocab& vocab, std::string text) : vocab_(vocab), text_(std::move(text)) {}

  void encode(std::vector<TokenId>& out) {
    split_into_characters();
    for (int i = 1; i < static_cast<int>(symbols_.size()); ++i) try_add_bigram(i - 1, i);
    merge_best_pairs();
    for (int i = symbols_.empty() ? -1 : 0; i != -1; i = symbols_[static_cast<size_t>(i)].next) {
      resegment(symbols_[static_cast<size_t>(i)], out);
    }
  }

 private:
  std::string_view symbol_text(const Symbol& s) const {
    return std::string_view(text_).substr(s.offset, s.n);
  }

  void split_into_characters() {
    size_t offset = 0;
    int index = 0;
    while (offset < text_.size()) {
      Symbol sym;
      sym.offset = offset;
      sym.n = std::min(utf8::sequence_length(static_cast<uint8_t>(text_[offset])),
                       text_.size() - offset);
      offset += sym.n;
      sym.prev = index - 1;
      sym.next = offset == text_.size() ? -1 : index + 1;
      ++index;
      symbols_.push_back(sym);
    }
  }

  void merge_best_pairs() {
    while (!queue_.empty()) {
      const Bigram bigram = queue_.top();
      queue_.pop();
      Symbol& left = symbols_[static_cast<size_t>(bigram.left)];
      Symbol& right = symbols_[static_cast<size_t>(bigram.right)];
      // Stale entry: one side has been merged since the pair was queued.
      if (left.n == 0 || right.n == 0 || left.n + right.n != bigram.size) continue;
      left.n += right.n;
      right.n = 0;
      left.next = right.next;
      if (right.next >= 0) symbols_[static_cast<size_t>(right.next)].prev = bigram.left;
      try_add_bigram(left.prev, bigram.left);
      try_add_bigram(bigram.left, left.next);
    }
  }

  void try_add_bigram(int left, int right) {
    if (left == -1 || right == -1) return;
    const Symbol& l = symbols_[static_cast<size_t>(left)];
    const Symbol& r = symbols_[static_cast<size_t>(right)];
    const std::string_view merged = std::string_view(text_).substr(l.offset, l.n + r.n);
    const TokenId token = vocab_.find(merged);
    if (token < 0) return;
    queue_.push(Bigram{left, right, vocab_.scores[static_cast<size_t>(token)], merged.size()});
    rev_merge_[std::string(merged)] = {left, right};
  }

  void resegment(const Symbol& symbol, std::vector<TokenId>& out) const {
    const std::string_view text = symbol_text(symbol);
    if (const TokenId token = vocab_.find(text); token >= 0) {
      out.push_back(token);
      return;
    }
    const auto merge = rev_merge_.find(text);
    if (merge == rev_merge_.end()) {
      for (char byte : text) out.push_back(byte_token(static_cast<uint8_t>(byte)));
      return;
    }
    resegment(symbols_[static_cast<size_t>(merge->second.first)], out);
    resegment(symbols_[static_cast<size_t>(merge->second.second)], out);
  }

  // llama.cpp's byte_to_token: "<0xXX>", else the byte itself as a token; moa falls back to
  // <unk> where llama.cpp would throw.
  TokenId byte_token(uint8_t byte) const {
    static constexpr char kHex[] = "0123456789ABCDEF";
    const char name[6] = {'<', '0', 'x', kHex[byte >> 4], kHex[byte & 15], '>'};
    if (TokenId id = vocab_.find(std::string_view(name, 6)); id >= 0) return id;
    const char raw = static_cast<char>(byte);
    if (TokenId id = vocab_.find(std::string_view(&raw, 1)); id >= 0) return id;
    if (vocab_.unk >= 0) return vocab_.unk;
    fail("tokenizer: byte 0x{:02X} has no byte token and the vocab has no unknown token", byte);
  }

  const Vocab& vocab_;
  const std::string text_;
  std::vector<Symbol> symbols_;
  std::priority_queue<Bigram, std::vector<Bigram>, BigramLowerPriority> queue_;
  std::map<std::string, std::pair<int, int>, std::less<>> rev_merge_;
};

std::string escape_spaces(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 4);
  for (char c : text) {
    if (c == ' ') {
      out += kSpaceMarker;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

void spm_encode(const Vocab& vocab, std::string_view text, std::vector<TokenId>& out) {
  SpmSession session(vocab, escape_spaces(text));
  session.encode(out);
}

}  // namespace moa
