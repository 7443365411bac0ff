// Large buffers the kernel may back with 2 MiB pages (transparent huge pages in "madvise" or
// "always" mode). Decode streams the whole model and KV cache once per token; with 4 KiB pages
// every page is a TLB miss that stalls the stream (Q8_0 decode on a 2-core Zen 4: 75% -> 91% of
// the memory-bandwidth bound). Where huge pages are off, this is plain anonymous memory.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace moa {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// `bytes` (> 0) of zeroed memory at a 2 MiB-aligned address, advised MADV_HUGEPAGE before the
// first touch; nullptr when the system has no memory left.
void* map_huge_pages(size_t bytes);
// Makes memory from map_huge_pages(bytes) read-only (a stray write then faults, as on a mapping).
void protect_huge_pages(void* p, size_t bytes);
// Releases memory from map_huge_pages(bytes).
void unmap_huge_pages(void* p, size_t bytes);

// std::allocator that puts allocations of 2 MiB and more on huge pages (KV caches).
template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  explicit HugePageAllocator(const HugePageAllocator<U>&) {}

  T* allocate(size_t n) {
    if (n > static_cast<size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    const size_t bytes = n * sizeof(T);
    if (bytes < kHugePageBytes) return std::allocator<T>().allocate(n);
    void* p = map_huge_pages(bytes);
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) {
    if (n * sizeof(T) < kHugePageBytes) {
      std::allocator<T>().deallocate(p, n);
    } else {
      unmap_huge_pages(p, n * sizeof(T));
    }
  }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const {
    return true;
  }
};

template <class T>
using HugePageVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace moa
