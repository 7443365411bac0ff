// Software prefetch for the row dots of matvec. A decode step streams every weight once, and one
// core reading one sequential stream keeps too few cache misses in flight for its share of the
// memory bandwidth: with the row dot's own work in between, the hardware prefetcher alone left a
// Q8_0 matvec at about 60% of the streaming-read probe. So matvec reads several rows far apart at
// once (kRowStreams, kernels/q8_activation.h), and each row dot asks for the bytes a
// fixed distance ahead of the ones it is reading, a few lines per step of its loop. The distance
// runs past the end of the row into the next rows of the matrix (rows are contiguous), so it
// does not depend on the row length; prefetches past the matrix are harmless hints.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moa::kernels {

// 4 KiB ahead: 4-32 KiB measured alike, 2 KiB a little less (docs/dense-engine.md, Row streams);
// the shortest of those fetches least for nothing past the end of a matrix.
inline constexpr size_t kStreamAheadBytes = 4096;

// Requests the lines of [p, p + bytes) shifted kStreamAheadBytes ahead: call once per step of a
// loop that consumes `bytes` contiguous bytes starting at p (steps that follow each other cover
// every line between them).
template <size_t kBytes>
inline void prefetch_stream_ahead(const void* p) {
  // Integer arithmetic: the address may lie past the end of the matrix, and is never read.
  const auto* ahead =
      reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + kStreamAheadBytes);
  for (size_t b = 0; b < kBytes; b += 64) __builtin_prefetch(ahead + b, 0, 3);
}

}  // namespace moa::kernels
