// Read-only file bytes, mapped or read into huge pages; an empty file is an empty span (mmap of 0
// bytes fails).
#include "util/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"
#include "util/huge_pages.h"

namespace moa {

namespace {

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

MappedFile MappedFile::open(const std::string& path, FileLoad load) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer before the check.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail("{}: cannot open file: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file ({})", path, file_kind(st.st_mode));
  }
  MappedFile file;
  file.path_ = path;
  file.size_ = static_cast<size_t>(st.st_size);
  try {
    if (file.size_ > 0 && load == FileLoad::kMap) file.map_in_place(fd);
    if (file.size_ > 0 && load == FileLoad::kReadIntoHugePages) file.read_into_huge_pages(fd);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return file;
}

void MappedFile::map_in_place(int fd) {
  void* addr = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  if (addr == MAP_FAILED) fail("{}: cannot map file: {}", path_, std::strerror(errno));
  data_ = static_cast<const uint8_t*>(addr);
}

void MappedFile::read_into_huge_pages(int fd) {
  auto* buffer = static_cast<uint8_t*>(map_huge_pages(size_));
  if (buffer == nullptr)
    fail("{}: no memory for {} bytes (mapping the file instead of reading it needs less)", path_,
         size_);
  data_ = buffer;
  huge_pages_ = true;  // from here on release() frees the buffer, also if reading fails
  size_t done = 0;
  while (done < size_) {
    const ssize_t n = ::pread(fd, buffer + done, size_ - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("{}: read failed at byte {}: {}", path_, done, std::strerror(errno));
    if (n == 0) fail("{}: file ended at byte {} of {} while reading", path_, done, size_);
    done += static_cast<size_t>(n);
  }
  protect_huge_pages(buffer, size_);
}

std::string read_regular_file(const std::string& path) {
  const MappedFile file = MappedFile::open(path, FileLoad::kMap);
  return {reinterpret_cast<const char*>(file.bytes().data()), file.bytes().size()};
}

MappedFile::MappedFile(MappedFile&& other) noexcept { *this = std::move(other); }

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    data_ = other.data_;
    size_ = other.size_;
    huge_pages_ = other.huge_pages_;
    path_ = std::move(other.path_);
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

MappedFile::~MappedFile() { release(); }

void MappedFile::release() {
  if (data_ != nullptr && huge_pages_) unmap_huge_pages(const_cast<uint8_t*>(data_), size_);
  if (data_ != nullptr && !huge_pages_) ::munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  huge_pages_ = false;
  size_ = 0;
}

}  // namespace moa
