// Measures the machine's memory read bandwidth, the ceiling for memory-bound kernels such as
// matvec; `moa bench` reports kernel throughput as a fraction of it.
#pragma once

namespace moa::kernels {

// Best-of-several read bandwidth in GB/s (1e9 bytes/s) over a buffer far larger than the caches,
// read by n_threads OpenMP threads with SIMD loads. Takes about a quarter of a second.
double measure_memory_bandwidth_gbs(int n_threads);

}  // namespace moa::kernels
