// A whole file's bytes, read-only: mapped in place, or read once into huge-page memory (model
// weights that decode streams every token: no TLB miss per 4 KiB, see util/huge_pages.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace moa {

enum class FileLoad {
  kMap,                // mmap the file: nothing copied, pages loaded on demand (4 KiB pages)
  kReadIntoHugePages,  // read it into anonymous huge-page memory: faster to stream
};

class MappedFile {
 public:
  // The bytes of `path`; throws moa::Error naming the path if it cannot be opened, mapped or read.
  static MappedFile open(const std::string& path, FileLoad load = FileLoad::kMap);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  void release();
  void map_in_place(int fd);
  void read_into_huge_pages(int fd);
  const uint8_t* data_ = nullptr;
  bool huge_pages_ = false;  // data_ is from map_huge_pages, not a file mapping
  size_t size_ = 0;
  std::string path_;
};

// The whole content of a regular file (prompts, plans): a directory, FIFO or device is refused
// with an error naming the path instead of blocking or failing half-way through reading.
std::string read_regular_file(const std::string& path);

}  // namespace moa
