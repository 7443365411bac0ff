// Huge-page-advised anonymous mappings: over-map by one huge page, trim to a 2 MiB boundary.
#include "util/huge_pages.h"

#include <sys/mman.h>

#include <cstdint>

namespace moa {
namespace {

size_t round_up_to_huge(size_t bytes) {
  return (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
}

}  // namespace

void* map_huge_pages(size_t bytes) {
  if (bytes == 0 || bytes > SIZE_MAX - 2 * kHugePageBytes) return nullptr;
  const size_t span = round_up_to_huge(bytes);
  void* raw = ::mmap(nullptr, span + kHugePageBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  auto* start = static_cast<uint8_t*>(raw);
  auto* aligned = reinterpret_cast<uint8_t*>(round_up_to_huge(reinterpret_cast<uintptr_t>(raw)));
  const auto head = static_cast<size_t>(aligned - start);
  if (head > 0) ::munmap(start, head);
  if (kHugePageBytes - head > 0) ::munmap(aligned + span, kHugePageBytes - head);
  // Advice only: where transparent huge pages are off this fails and 4 KiB pages are used.
  ::madvise(aligned, span, MADV_HUGEPAGE);
  return aligned;
}

void protect_huge_pages(void* p, size_t bytes) {
  if (p != nullptr) ::mprotect(p, round_up_to_huge(bytes), PROT_READ);
}

void unmap_huge_pages(void* p, size_t bytes) {
  if (p != nullptr) ::munmap(p, round_up_to_huge(bytes));
}

}  // namespace moa
