// Streaming-read bandwidth probe: each thread sums its slice of a 256 MiB buffer with SIMD loads
// (a reduction, so the reads cannot be optimised away); the best of several passes is reported.
#include "kernels/bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "hwy/highway.h"
#include "util/huge_pages.h"

namespace moa::kernels {
namespace {

namespace hn = hwy::HWY_NAMESPACE;

constexpr size_t kBufferFloats = size_t{64} << 20;  // 256 MiB
constexpr int kPasses = 5;

// Reads kStreams interleaved sub-ranges at once: several concurrent streams per core are what
// memory-bound kernels like matvec (many rows in flight) achieve, one stream alone falls short.
constexpr size_t kStreams = 8;

float sum_range(const float* data, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const size_t stream_len = n / kStreams / lanes * lanes;
  auto acc = hn::Zero(d);
  decltype(acc) partial[kStreams];
  for (auto& p : partial) p = hn::Zero(d);
  for (size_t i = 0; i < stream_len; i += lanes) {
    for (size_t s = 0; s < kStreams; ++s)
      partial[s] = hn::Add(partial[s], hn::Load(d, data + s * stream_len + i));
  }
  for (const auto& p : partial) acc = hn::Add(acc, p);
  return hn::GetLane(hn::SumOfLanes(d, acc));
}

}  // namespace

double measure_memory_bandwidth_gbs(int n_threads) {
  // Huge pages like the weights and KV cache it is the bound for (TLB misses would lower it).
  HugePageVector<float> buffer(kBufferFloats);
  const int threads = std::max(1, n_threads);
  const size_t slice = kBufferFloats / static_cast<size_t>(threads);
  // First touch from the reading threads, so pages are mapped before timing.
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int t = 0; t < threads; ++t) {
    std::fill_n(buffer.data() + static_cast<size_t>(t) * slice, slice, 1.0f);
  }
  double best_seconds = 1e30;
  float sink = 0.0f;
  for (int pass = 0; pass < kPasses; ++pass) {
    const auto start = std::chrono::steady_clock::now();
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : sink)
    for (int t = 0; t < threads; ++t) {
      sink += sum_range(buffer.data() + static_cast<size_t>(t) * slice, slice);
    }
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    best_seconds = std::min(best_seconds, elapsed.count());
  }
  // `sink` equals the buffer length; folding it in keeps the sums observable.
  const size_t read_per_thread = slice / kStreams / hn::Lanes(hn::ScalableTag<float>()) *
                                 hn::Lanes(hn::ScalableTag<float>()) * kStreams;
  const double bytes = static_cast<double>(read_per_thread) * threads * sizeof(float) + 0.0 * sink;
  return bytes / best_seconds / 1e9;
}

}  // namespace moa::kernels
