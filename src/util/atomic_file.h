// Files moa writes (plans, profiles, reports, GGUFs) appear whole or not at all: the content
// goes to a temporary file in the same folder, is flushed, then renamed over the target.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <string_view>

namespace moa {

// Calls `write(stream)` on a temporary sibling of `path`, then renames it to `path`. An empty
// path, a target that exists but is not a regular file (a FIFO, a device, a folder) and a file
// kept by keep_from_overwrite are refused up front. On any failure (including an exception from
// `write`) the temporary file is removed and the previous content of `path` is left untouched.
void write_file_atomically(const std::string& path,
                           const std::function<void(std::ostream&)>& write);

void write_file_atomically(const std::string& path, std::string_view content);

// The checks write_file_atomically makes before writing, plus that the folder exists: for a
// command to call before long work, so that a bad output path fails in seconds.
void check_output_path(const std::string& path);

// Marks a file this process reads as input (a model, a plan, a profile, a text) that no output
// may replace: an output path naming it (or a hard link to it) is refused before anything is
// written. Not for files a job reads to resume and then rewrites.
void keep_from_overwrite(const std::string& path);

}  // namespace moa
