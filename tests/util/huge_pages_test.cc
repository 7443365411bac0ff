#include "util/huge_pages.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <numeric>

#include "support/assets.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace moa {
namespace {

TEST(HugePages, MappingIsAlignedZeroedAndWritable) {
  const size_t bytes = kHugePageBytes + 12345;
  auto* p = static_cast<uint8_t*>(map_huge_pages(bytes));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kHugePageBytes, 0u);
  EXPECT_EQ(p[0], 0);
  EXPECT_EQ(p[bytes - 1], 0);
  p[0] = 7;
  p[bytes - 1] = 9;  // the whole rounded-up span is ours
  EXPECT_EQ(p[0] + p[bytes - 1], 16);
  unmap_huge_pages(p, bytes);
}

TEST(HugePages, ZeroBytesIsNoMapping) { EXPECT_EQ(map_huge_pages(0), nullptr); }

TEST(HugePages, VectorKeepsValuesSmallAndLarge) {
  for (size_t n : {size_t{10}, kHugePageBytes / sizeof(int32_t) + 3}) {
    HugePageVector<int32_t> v(n);
    std::iota(v.begin(), v.end(), 0);
    EXPECT_EQ(v[n - 1], static_cast<int32_t>(n - 1));
    v.resize(2 * n);  // reallocation moves the values across allocators' size classes
    EXPECT_EQ(v[n - 1], static_cast<int32_t>(n - 1));
    EXPECT_EQ(v[2 * n - 1], 0);
  }
  HugePageVector<uint8_t> large(3 * kHugePageBytes);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(large.data()) % kHugePageBytes, 0u);
}

std::string write_pattern_file(size_t bytes) {
  const std::string path = test::temp_dir() + "/pattern.bin";
  std::ofstream out(path, std::ios::binary);
  for (size_t i = 0; i < bytes; ++i) out.put(static_cast<char>((i * 131 + i / 4096) & 0xFF));
  return path;
}

TEST(MappedFile, ReadIntoHugePagesHasTheFileBytes) {
  const std::string path = write_pattern_file(kHugePageBytes + 4096 * 3 + 17);
  const MappedFile mapped = MappedFile::open(path, FileLoad::kMap);
  MappedFile read = MappedFile::open(path, FileLoad::kReadIntoHugePages);
  ASSERT_EQ(read.bytes().size(), mapped.bytes().size());
  EXPECT_TRUE(std::equal(read.bytes().begin(), read.bytes().end(), mapped.bytes().begin()));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(read.bytes().data()) % kHugePageBytes, 0u);
  EXPECT_DEATH(const_cast<uint8_t*>(read.bytes().data())[0] = 1, "")  // read-only, like a map
      << "the loaded bytes are writable";
  const MappedFile moved = std::move(read);  // ownership moves with the object
  EXPECT_EQ(moved.bytes().size(), mapped.bytes().size());
  EXPECT_TRUE(read.bytes().empty());
}

TEST(MappedFile, EmptyFileAndErrorsInEitherMode) {
  const std::string empty = test::temp_dir() + "/empty.bin";
  std::ofstream(empty).close();
  for (FileLoad load : {FileLoad::kMap, FileLoad::kReadIntoHugePages}) {
    EXPECT_TRUE(MappedFile::open(empty, load).bytes().empty());
    try {
      MappedFile::open(test::temp_dir() + "/missing.bin", load);
      FAIL() << "no error for a missing file";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("missing.bin: cannot open file"), std::string::npos)
          << e.what();
    }
    try {
      MappedFile::open(test::temp_dir(), load);
      FAIL() << "no error for a folder";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace moa
