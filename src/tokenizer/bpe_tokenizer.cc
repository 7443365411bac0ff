// Byte-level BPE ("gpt2" vocabs), reproducing llama.cpp's llm_tokenizer_bpe_session: the text is
// pre-tokenized into words (bpe_pretokenizer.cc), each word's bytes are mapped to the GPT-2
// printable alphabet, and adjacent symbols are merged lowest merge rank first (leftmost on ties)
// until no ranked pair is left. A symbol that is no vocab entry falls back to one token per byte
// whose single-character string happens to be in the vocab; other bytes are dropped, as in
// llama.cpp.
#include <array>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace moa {
namespace {

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 bytes
// map in order to U+0100, U+0101, ...
constexpr std::array<char32_t, 256> make_byte_to_code_point() {
  std::array<char32_t, 256> table{};
  char32_t next_extra = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    table[static_cast<size_t>(b)] = printable ? static_cast<char32_t>(b) : next_extra++;
  }
  return table;
}

constexpr std::array<char32_t, 256> kByteToCodePoint = make_byte_to_code_point();

// Inverse of kByteToCodePoint over U+0000..U+0143; -1 where no byte maps.
constexpr std::array<int16_t, 0x144> make_code_point_to_byte() {
  std::array<int16_t, 0x144> table{};
  for (int16_t& entry : table) entry = -1;
  for (int b = 0; b < 256; ++b)
    table[kByteToCodePoint[static_cast<size_t>(b)]] = static_cast<int16_t>(b);
  return table;
}

constexpr std::array<int16_t, 0x144> kCodePointToByte = make_code_point_to_byte();

void append_two_byte_utf8(std::string& out, char32_t cpt) {
  if (cpt < 0x80) {
    out += static_cast<char>(cpt);
    return;
  }
  out += static_cast<char>(0xC0 | (cpt >> 6));
  out += static_cast<char>(0x80 | (cpt & 0x3F));
}

// llama.cpp's unicode_len_utf8: sequence length from the lead byte's top four bits.
size_t utf8_length_of_lead(uint8_t lead) {
  static constexpr std::array<uint8_t, 16> kLengths = {1, 1, 1, 1, 1, 1, 1, 1,
                                                       1, 1, 1, 1, 2, 2, 3, 4};
  return kLengths[lead >> 4];
}

// One symbol of a word being merged: a byte range of the word, linked to its neighbours.
struct Symbol {
  int prev;
  int next;
  size_t begin;
  size_t size;
};

struct Candidate {
  int32_t rank;
  int left;
  int right;
  size_t size;  // combined byte length when queued, to detect outdated candidates
};

struct CandidateOrder {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

class WordMerger {
 public:
  WordMerger(const Vocab& vocab, std::string_view word) : vocab_(vocab), word_(word) {}

  // The word's final symbols, as byte ranges of the word.
  std::vector<Symbol> merge() {
    split_into_characters();
    for (int i = 1; i < static_cast<int>(symbols_.size()); ++i) queue_pair(i - 1, i);
    while (!queue_.empty()) {
      const Candidate top = queue_.top();
      queue_.pop();
      Symbol& left = symbols_[static_cast<size_t>(top.left)];
      Symbol& right = symbols_[static_cast<size_t>(top.right)];
      if (left.size == 0 || right.size == 0 || left.next != top.right ||
          left.size + right.size != top.size) {
        continue;  // one side changed since the pair was queued
      }
      left.size += right.size;
      right.size = 0;
      left.next = right.next;
      if (right.next >= 0) symbols_[static_cast<size_t>(right.next)].prev = top.left;
      queue_pair(left.prev, top.left);
      queue_pair(top.left, left.next);
    }
    std::vector<Symbol> result;
    for (const Symbol& symbol : symbols_) {
      if (symbol.size > 0) result.push_back(symbol);
    }
    return result;
  }

 private:
  void split_into_characters() {
    size_t offset = 0;
    while (offset < word_.size()) {
      const size_t length =
          std::min(word_.size() - offset, utf8_length_of_lead(static_cast<uint8_t>(word_[offset])));
      const int index = static_cast<int>(symbols_.size());
      symbols_.push_back(
          {index - 1, offset + length == word_.size() ? -1 : index + 1, offset, length});
      offset += length;
    }
  }

  void queue_pair(int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol& a = symbols_[static_cast<size_t>(left)];
    const Symbol& b = symbols_[static_cast<size_t>(right)];
    key_.assign(word_.substr(a.begin, a.size));
    key_ += ' ';
    key_.append(word_.substr(b.begin, b.size));
    const auto it = vocab_.merge_rank.find(key_);
    if (it == vocab_.merge_rank.end()) return;
    queue_.push({it->second, left, right, a.size + b.size});
  }

  const Vocab& vocab_;
  std::string_view word_;
  std::vector<Symbol> symbols_;
  std::priority_queue<Candidate, std::vector<Candidate>, CandidateOrder> queue_;
  std::string key_;  // reused "left right" lookup key
};

void append_symbol(const Vocab& vocab, std::string_view text, std::vector<TokenId>& out) {
  const TokenId id = vocab.find(text);
  if (id >= 0) {
    out.push_back(id);
    return;
  }
  for (char byte : text) {
    const TokenId byte_id = vocab.find(std::string_view(&byte, 1));
    if (byte_id >= 0) out.push_back(byte_id);
  }
}

}  // namespace

std::string bpe_bytes_to_unicode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char byte : bytes) append_two_byte_utf8(out, kByteToCodePoint[static_cast<uint8_t>(byte)]);
  return out;
}

// Characters outside the 256-entry alphabet become "[UNK_BYTE_0x<hex of the character>" followed
// by the whole input and "]", exactly as llama.cpp's llama_decode_text writes them.
std::string bpe_unicode_to_bytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const uint8_t lead = static_cast<uint8_t>(text[pos]);
    const size_t length = std::min(text.size() - pos, utf8_length_of_lead(lead));
    char32_t cpt = 0x10FFFF;
    if (length == 1 && lead < 0x80) {
      cpt = lead;
    } else if (length == 2 && (static_cast<uint8_t>(text[pos + 1]) & 0xC0) == 0x80) {
      cpt = ((lead & 0x1F) << 6) | (static_cast<uint8_t>(text[pos + 1]) & 0x3F);
    }
    if (cpt < kCodePointToByte.size() && kCodePointToByte[cpt] >= 0) {
      out += static_cast<char>(kCodePointToByte[cpt]);
    } else {
      out += "[UNK_BYTE_0x";
      for (size_t i = 0; i < length; ++i) {
        static constexpr char kHex[] = "0123456789abcdef";
        const uint8_t b = static_cast<uint8_t>(text[pos + i]);
        out += kHex[b >> 4];
        out += kHex[b & 15];
      }
      out.append(text);
      out += ']';
    }
    pos += length;
  }
  return out;
}

void bpe_encode(const Vocab& vocab, std::string_view text, std::vector<TokenId>& out) {
  for (const std::string& raw_word : bpe_pretokenize(vocab.pre_name, text)) {
    const std::string word = bpe_bytes_to_unicode(raw_word);
    if (word.empty()) continue;
    if (vocab.ignore_merges) {
      const TokenId id = vocab.find(word);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
    }
    WordMerger merger(vocab, word);
    for (const Symbol& symbol : merger.merge()) {
      append_symbol(vocab, std::string_view(word).substr(symbol.begin, symbol.size), out);
    }
  }
}

}  // namespace moa
