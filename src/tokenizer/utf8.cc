// UTF-8 decoding and encoding per RFC 3629 (strict: overlong forms, surrogates and code points
// above U+10FFFF are invalid), plus the lenient lead-byte length rule llama.cpp splits text with.
#include "tokenizer/utf8.h"

namespace moa::utf8 {
namespace {

bool is_continuation(uint8_t byte) { return (byte & 0xC0) == 0x80; }

// Allowed range of the second byte for a lead byte (RFC 3629 table), which is what rules out
// overlong forms, surrogates and values above U+10FFFF. Returns false for invalid leads.
bool second_byte_range(uint8_t lead, uint8_t& low, uint8_t& high) {
  low = 0x80;
  high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) return true;
  if (lead == 0xE0) {
    low = 0xA0;
    return true;
  }
  if (lead == 0xED) {
    high = 0x9F;
    return true;
  }
  if (lead >= 0xE1 && lead <= 0xEF) return true;
  if (lead == 0xF0) {
    low = 0x90;
    return true;
  }
  if (lead == 0xF4) {
    high = 0x8F;
    return true;
  }
  return lead >= 0xF1 && lead <= 0xF3;
}

size_t strict_length(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// True when bytes [0, n) can start a well-formed sequence announced by text[0].
bool is_valid_prefix(std::string_view text, size_t n) {
  const auto lead = static_cast<uint8_t>(text[0]);
  uint8_t low = 0, high = 0;
  if (!second_byte_range(lead, low, high)) return false;
  for (size_t i = 1; i < n; ++i) {
    const auto byte = static_cast<uint8_t>(text[i]);
    if (i == 1 ? (byte < low || byte > high) : !is_continuation(byte)) return false;
  }
  return true;
}

// Bytes to replace by one U+FFFD where decoding fails at `pos`: the longest prefix of a
// well-formed sequence, or a single byte (Unicode's "maximal subpart" practice).
size_t invalid_span_length(std::string_view text, size_t pos) {
  const size_t n = strict_length(static_cast<uint8_t>(text[pos]));
  const std::string_view rest = text.substr(pos);
  size_t k = 1;
  while (k < n && k < rest.size() && is_valid_prefix(rest, k + 1)) ++k;
  return k;
}

}  // namespace

size_t sequence_length(uint8_t lead) {
  static constexpr uint8_t kLengthByHighNibble[16] = {1, 1, 1, 1, 1, 1, 1, 1,
                                                      1, 1, 1, 1, 2, 2, 3, 4};
  return kLengthByHighNibble[lead >> 4];
}

std::optional<char32_t> decode(std::string_view text, size_t& pos) {
  if (pos >= text.size()) return std::nullopt;
  const auto lead = static_cast<uint8_t>(text[pos]);
  const size_t n = strict_length(lead);
  if (n == 0 || pos + n > text.size()) return std::nullopt;
  if (n == 1) {
    ++pos;
    return lead;
  }
  if (!is_valid_prefix(text.substr(pos, n), n)) return std::nullopt;
  static constexpr uint8_t kLeadMask[5] = {0, 0, 0x1F, 0x0F, 0x07};
  char32_t cp = lead & kLeadMask[n];
  for (size_t i = 1; i < n; ++i) cp = (cp << 6) | (static_cast<uint8_t>(text[pos + i]) & 0x3F);
  pos += n;
  return cp;
}

std::vector<char32_t> decode_all(std::string_view text) {
  std::vector<char32_t> out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    if (auto cp = decode(text, pos)) {
      out.push_back(*cp);
    } else {
      out.push_back(kReplacementChar);
      ++pos;
    }
  }
  return out;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string encode(char32_t cp) {
  std::string out;
  append(out, cp);
  return out;
}

size_t incomplete_tail_length(std::string_view text) {
  // A character is at most 4 bytes, so an unfinished one starts within the last 3 bytes.
  for (size_t back = 1; back <= 3 && back <= text.size(); ++back) {
    const size_t start = text.size() - back;
    const auto byte = static_cast<uint8_t>(text[start]);
    if (is_continuation(byte)) continue;
    const size_t needed = strict_length(byte);
    if (needed > back && is_valid_prefix(text.substr(start), back)) return back;
    return 0;
  }
  return 0;
}

std::string sanitize(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    if (decode(text, pos)) {
      out.append(text.substr(start, pos - start));
    } else {
      append(out, kReplacementChar);
      pos += invalid_span_length(text, pos);
    }
  }
  return out;
}

bool is_valid(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (!decode(text, pos)) return false;
  }
  return true;
}

}  // namespace moa::utf8
