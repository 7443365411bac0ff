// How many threads a kernel's work is worth. An OpenMP team costs a few microseconds to open on a
// quiet machine, but its closing barrier waits for every member: when the cores are shared with
// another process, a member the OS has descheduled holds the others up for as long as the
// scheduler keeps it off the CPU (milliseconds). So a kernel splits its work only into shares big
// enough to amortise that, and small work (a 260K-parameter model's matvecs, attention over a
// short or narrow cache) runs on the calling thread alone, with no team at all. Each kernel
// states its minimum share in its own unit (weights read, multiply-adds).
#pragma once

#include <algorithm>
#include <cstdint>

namespace moa::kernels {

// Matvec: weights streamed per thread (about 10 us of a memory-bound row loop).
inline constexpr int64_t kMinMatvecWeightsPerThread = int64_t{1} << 16;
// Flash attention: multiply-adds (Q.K plus P.V over visible key tiles) per thread, tens of us.
inline constexpr int64_t kMinAttentionMacsPerThread = int64_t{1} << 18;
// GEMM panels: multiply-adds per thread (tens of us at the sgemm rate).
inline constexpr int64_t kMinGemmMacsPerThread = int64_t{1} << 20;

// Threads for `work` units when each should get at least `min_per_thread`: 1 .. n_threads.
inline int threads_for_work(int n_threads, int64_t work, int64_t min_per_thread) {
  if (n_threads <= 1) return 1;
  if (min_per_thread <= 0) return n_threads;
  return static_cast<int>(std::clamp<int64_t>(work / min_per_thread, 1, n_threads));
}

}  // namespace moa::kernels
