// UTF-8 helpers shared by the tokenizers: the lead-byte length rule llama.cpp uses to split text
// into characters, strict decoding of one code point, encoding, and the checks the streaming
// decoder needs (how many trailing bytes are an unfinished character, replacing invalid bytes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moa::utf8 {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Length of the sequence a lead byte announces, from its top four bits only (llama.cpp's
// unicode_len_utf8): 0xxx -> 1, 10xx (stray continuation) -> 1, 110x -> 2, 1110 -> 3, 1111 -> 4.
size_t sequence_length(uint8_t lead);

// Decodes one well-formed code point at `pos` (no overlongs, surrogates or values > U+10FFFF)
// and advances `pos` past it; returns nullopt and leaves `pos` alone when the bytes are invalid
// or cut short.
std::optional<char32_t> decode(std::string_view text, size_t& pos);

// Decodes a whole string; each invalid byte becomes U+FFFD.
std::vector<char32_t> decode_all(std::string_view text);

void append(std::string& out, char32_t code_point);
std::string encode(char32_t code_point);

// Number of bytes at the end of `text` that form the valid beginning of a multi-byte character
// still waiting for its continuation bytes (0..3).
size_t incomplete_tail_length(std::string_view text);

// `text` with ill-formed bytes replaced by U+FFFD: one per maximal ill-formed subpart (a
// character cut short counts once; a stray byte counts once).
std::string sanitize(std::string_view text);

bool is_valid(std::string_view text);

}  // namespace moa::utf8
