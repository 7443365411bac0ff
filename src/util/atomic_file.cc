// Temp file + fsync + rename; see atomic_file.h.
#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "util/error.h"

namespace moa {

void write_file_atomically(const std::string& path,
                           const std::function<void(std::ostream&)>& write) {
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
