// Temp file + fsync + rename; see atomic_file.h.
#include "util/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <utility>

#include "util/error.h"

namespace moa {
namespace {

using FileId = std::pair<dev_t, ino_t>;

std::mutex kept_mutex;
std::set<FileId> kept_files;

// Fails unless `path` may be replaced by an output: it is absent, or a regular file not kept.
void check_output_target(const std::string& path) {
  if (path.empty()) fail("an empty output path (expected a file name)");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;  // absent (or unreachable: the write will say)
  if (!S_ISREG(st.st_mode)) {
    fail(
        "{}: not a regular file (moa writes its outputs only to regular files, as it replaces "
        "them whole)",
        path);
  }
  const std::lock_guard lock(kept_mutex);
  if (kept_files.count({st.st_dev, st.st_ino}) != 0) {
    fail("{}: is an input of this command (expected another output path)", path);
  }
}

}  // namespace

void check_output_path(const std::string& path) {
  check_output_target(path);
  const std::string parent = std::filesystem::path(path).parent_path().string();
  const std::string folder = parent.empty() ? "." : parent;
  struct stat st {};
  if (::stat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    fail("{}: cannot create file: its folder {} does not exist", path, folder);
  }
}

void keep_from_overwrite(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;
  const std::lock_guard lock(kept_mutex);
  kept_files.insert({st.st_dev, st.st_ino});
}

void write_file_atomically(const std::string& path,
                           const std::function<void(std::ostream&)>& write) {
  check_output_target(path);
  const std::string temp_path = path + ".tmp." + std::to_string(::getpid());
  try {
    std::ofstream out(temp_path, std::ios::binary | std::ios::trunc);
    // Named by the target: the temporary sibling is an implementation detail the user never gave.
    if (!out) fail("{}: cannot create file: {}", path, std::strerror(errno));
    write(out);
    out.flush();
    if (!out) fail("{}: write failed: {}", path, std::strerror(errno));
    out.close();
    int fd = ::open(temp_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
    if (std::rename(temp_path.c_str(), path.c_str()) != 0) {
      fail("{}: cannot rename temporary file into place: {}", path, std::strerror(errno));
    }
  } catch (...) {
    std::remove(temp_path.c_str());
    throw;
  }
}

void write_file_atomically(const std::string& path, std::string_view content) {
  write_file_atomically(path, [&](std::ostream& out) {
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
  });
}

}  // namespace moa
