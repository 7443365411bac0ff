// Files moa writes (plans, profiles, reports, GGUFs) appear whole or not at all: the content
// goes to a temporary file in the same folder, is flushed, then renamed over the target.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <string_view>

namespace moa {

// Calls `write(stream)` on a temporary sibling of `path`, then renames it to `path`.
// On any failure (including an exception from `write`) the temporary file is removed and the
// previous content of `path` is left untouched.
void write_file_atomically(const std::string& path,
                           const std::function<void(std::ostream&)>& write);

void write_file_atomically(const std::string& path, std::string_view content);

}  // namespace moa
