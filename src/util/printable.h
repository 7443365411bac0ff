// Text from files and flags (GGUF keys, tensor and architecture names, paths) ends up in error
// lines and tables; a newline in it would split the one-line error, an ESC sequence would reach
// the terminal. printable() shows such bytes as escapes and keeps valid printable UTF-8 as is.
#pragma once

#include <string>
#include <string_view>

namespace moa {

// `text` with control characters (C0, DEL, C1) and bytes that are not valid UTF-8 written as
// \n, \r, \t, \e or \xNN; everything else unchanged.
std::string printable(std::string_view text);

}  // namespace moa
