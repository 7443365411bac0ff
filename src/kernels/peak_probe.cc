// Int8 dot-product peak probe; see peak_probe.h. Each ISA's loop keeps kAccumulators independent
// accumulator registers so the dot-product unit's latency is hidden and the loop runs at its
// throughput. The SIMD loops are compiled with function target attributes and chosen at run
// time, so a generic x86-64 build still probes VNNI on a CPU that has it.
#include "kernels/peak_probe.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>

#include "util/error.h"

namespace moa::kernels {
namespace {

constexpr int kAccumulators = 16;
constexpr int kScalarLanes = 16;  // 32-bit lanes of the plain C loop, 4 products each

using Clock = std::chrono::steady_clock;

__attribute__((target("avx512f,avx512vnni"))) int64_t loop_avx512_vnni(int64_t iterations,
                                                                       uint8_t a, int8_t b) {
  __m512i va = _mm512_set1_epi8(static_cast<char>(a));
  __m512i vb = _mm512_set1_epi8(b);
  asm volatile("" : "+v"(va), "+v"(vb));  // opaque: nothing is folded at compile time
  __m512i acc[kAccumulators];
  for (__m512i& r : acc) r = _mm512_setzero_si512();
  for (int64_t i = 0; i < iterations; ++i) {
    for (__m512i& r : acc) r = _mm512_dpbusd_epi32(r, va, vb);
  }
  __m512i sum = _mm512_setzero_si512();
  for (const __m512i& r : acc) sum = _mm512_add_epi32(sum, r);
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, sum);
  int64_t total = 0;
  for (int32_t x : lanes) total += x;
  return total;
}

// The sum of every 32-bit lane of the 256-bit loops' accumulators.
__attribute__((target("avx2"))) int64_t total_of(const __m256i (&acc)[kAccumulators]) {
  __m256i sum = _mm256_setzero_si256();
  for (const __m256i& r : acc) sum = _mm256_add_epi32(sum, r);
  alignas(32) int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), sum);
  int64_t total = 0;
  for (int32_t x : lanes) total += x;
  return total;
}

__attribute__((target("avx2,avxvnni"))) int64_t loop_avx_vnni(int64_t iterations, uint8_t a,
                                                              int8_t b) {
  __m256i va = _mm256_set1_epi8(static_cast<char>(a));
  __m256i vb = _mm256_set1_epi8(b);
  asm volatile("" : "+x"(va), "+x"(vb));
  __m256i acc[kAccumulators];
  for (__m256i& r : acc) r = _mm256_setzero_si256();
  for (int64_t i = 0; i < iterations; ++i) {
    for (__m256i& r : acc) r = _mm256_dpbusd_avx_epi32(r, va, vb);
  }
  return total_of(acc);
}

// Without VNNI, llama.cpp's AVX2 int8 dot: u8 x s8 pairs to s16, then pairs of s16 to s32.
__attribute__((target("avx2"))) int64_t loop_avx2(int64_t iterations, uint8_t a, int8_t b) {
  __m256i va = _mm256_set1_epi8(static_cast<char>(a));
  __m256i vb = _mm256_set1_epi8(b);
  __m256i ones = _mm256_set1_epi16(1);
  asm volatile("" : "+x"(va), "+x"(vb), "+x"(ones));
  __m256i acc[kAccumulators];
  for (__m256i& r : acc) r = _mm256_setzero_si256();
  for (int64_t i = 0; i < iterations; ++i) {
    for (__m256i& r : acc) {
      r = _mm256_add_epi32(r, _mm256_madd_epi16(_mm256_maddubs_epi16(va, vb), ones));
    }
  }
  return total_of(acc);
}

// Whatever the compiler makes of plain C for the build's target; the barrier keeps it from
// hoisting the products out of the loop.
int64_t loop_scalar(int64_t iterations, uint8_t a, int8_t b) {
  uint8_t ua[4 * kScalarLanes];
  int8_t sb[4 * kScalarLanes];
  std::fill_n(ua, 4 * kScalarLanes, a);
  std::fill_n(sb, 4 * kScalarLanes, b);
  int32_t acc[kScalarLanes] = {};
  for (int64_t i = 0; i < iterations; ++i) {
    asm volatile("" : : "r"(ua), "r"(sb) : "memory");
    for (int l = 0; l < kScalarLanes; ++l) {
      for (int k = 0; k < 4; ++k) acc[l] += ua[4 * l + k] * sb[4 * l + k];
    }
  }
  int64_t total = 0;
  for (int32_t x : acc) total += x;
  return total;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

const char* int8_dot_isa_name(Int8DotIsa isa) {
  switch (isa) {
    case Int8DotIsa::kAvx512Vnni:
      return "avx512-vnni";
    case Int8DotIsa::kAvxVnni:
      return "avx-vnni";
    case Int8DotIsa::kAvx2:
      return "avx2";
    case Int8DotIsa::kScalar:
      return "scalar";
  }
  return "scalar";
}

bool int8_dot_isa_supported(Int8DotIsa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case Int8DotIsa::kAvx512Vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni");
    case Int8DotIsa::kAvxVnni:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avxvnni");
    case Int8DotIsa::kAvx2:
      return __builtin_cpu_supports("avx2");
    case Int8DotIsa::kScalar:
      return true;
  }
  return false;
}

Int8DotIsa best_int8_dot_isa() {
  for (Int8DotIsa isa : {Int8DotIsa::kAvx512Vnni, Int8DotIsa::kAvxVnni, Int8DotIsa::kAvx2}) {
    if (int8_dot_isa_supported(isa)) return isa;
  }
  return Int8DotIsa::kScalar;
}

int64_t int8_dot_probe_macs_per_iteration(Int8DotIsa isa) {
  switch (isa) {
    case Int8DotIsa::kAvx512Vnni:
      return kAccumulators * 64;
    case Int8DotIsa::kAvxVnni:
    case Int8DotIsa::kAvx2:
      return kAccumulators * 32;
    case Int8DotIsa::kScalar:
      return kScalarLanes * 4;
  }
  return 0;
}

int64_t int8_dot_probe_loop(Int8DotIsa isa, int64_t iterations, uint8_t a, int8_t b) {
  if (!int8_dot_isa_supported(isa)) {
    fail("int8 probe: this CPU lacks {}", int8_dot_isa_name(isa));
  }
  switch (isa) {
    case Int8DotIsa::kAvx512Vnni:
      return loop_avx512_vnni(iterations, a, b);
    case Int8DotIsa::kAvxVnni:
      return loop_avx_vnni(iterations, a, b);
    case Int8DotIsa::kAvx2:
      return loop_avx2(iterations, a, b);
    case Int8DotIsa::kScalar:
      return loop_scalar(iterations, a, b);
  }
  return 0;
}

Int8Peak measure_int8_peak(int n_threads) {
  return measure_int8_peak(n_threads, best_int8_dot_isa());
}

Int8Peak measure_int8_peak(int n_threads, Int8DotIsa isa) {
  const int threads = std::max(1, n_threads);
  // Long enough per pass (about 20 ms on one thread) to dwarf the team's start and stop; a
  // lane gains 4 per iteration, far below 2^31 at these counts.
  int64_t iterations = 1 << 12;
  for (;;) {
    const auto start = Clock::now();
    int64_t sink = int8_dot_probe_loop(isa, iterations, 1, 1);
    if (seconds_since(start) >= 0.02 || iterations >= (int64_t{1} << 26)) {
      asm volatile("" : : "r"(sink));
      break;
    }
    iterations *= 2;
  }
  double best_seconds = 1e30;
  int64_t sink = 0;
  for (int pass = 0; pass < 3; ++pass) {
    const auto start = Clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += int8_dot_probe_loop(isa, iterations, 1, 1);
    best_seconds = std::min(best_seconds, seconds_since(start));
  }
  asm volatile("" : : "r"(sink));
  const double ops =
      2.0 * static_cast<double>(int8_dot_probe_macs_per_iteration(isa) * iterations) * threads;
  return {ops / best_seconds / 1e9, isa};
}

}  // namespace moa::kernels
