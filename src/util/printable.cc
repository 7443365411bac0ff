// Escaping of non-printable bytes (see printable.h): a small UTF-8 decoder decides which
// multi-byte sequences are valid text; C1 controls (U+0080..U+009F) count as non-printable.
#include "util/printable.h"

#include <fmt/format.h>

#include <cstdint>

namespace moa {
namespace {

// Length of the valid UTF-8 sequence at text[i] that encodes a printable code point, or 0.
size_t printable_sequence(std::string_view text, size_t i) {
  const auto lead = static_cast<uint8_t>(text[i]);
  if (lead >= 0x20 && lead < 0x7f) return 1;
  size_t length = 0;
  uint32_t cp = 0;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2, cp = lead & 0x1fu;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3, cp = lead & 0x0fu;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4, cp = lead & 0x07u;
  } else {
    return 0;  // ASCII control, DEL, stray continuation byte or invalid lead byte
  }
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    const auto byte = static_cast<uint8_t>(text[i + k]);
    if ((byte & 0xc0u) != 0x80u) return 0;
    cp = (cp << 6) | (byte & 0x3fu);
  }
  const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
  const bool valid = cp >= min_cp[length] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
  return valid && !(cp >= 0x80 && cp <= 0x9f) ? length : 0;
}

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (const size_t n = printable_sequence(text, i); n > 0) {
      out.append(text.substr(i, n));
      i += n;
      continue;
    }
    const auto byte = static_cast<uint8_t>(text[i++]);
    switch (byte) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case 0x1b:
        out += "\\e";
        break;
      default:
        out += fmt::format("\\x{:02x}", byte);
    }
  }
  return out;
}

}  // namespace moa
