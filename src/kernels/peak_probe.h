// Measures the machine's int8 dot-product peak, the ceiling for prefill GEMM on quantized weights
// multiplied by quantized activations (what llama.cpp does); `moa bench` reports each prefill
// row's effective GFLOP/s against it beside the F32 sgemm peak. The probe is a tight loop of
// independent u8 x s8 -> s32 dot products held in registers (no memory traffic), on the best
// instruction set the CPU has: AVX-512 VNNI (vpdpbusd), AVX-VNNI, AVX2 (vpmaddubsw +
// vpmaddwd), or plain C.
#pragma once

#include <cstdint>
#include <string>

namespace moa::kernels {

enum class Int8DotIsa { kAvx512Vnni, kAvxVnni, kAvx2, kScalar };

const char* int8_dot_isa_name(Int8DotIsa isa);
// The fastest int8 dot-product instruction set this CPU (and OS) supports.
Int8DotIsa best_int8_dot_isa();
bool int8_dot_isa_supported(Int8DotIsa isa);

// One probe loop: `iterations` rounds of the ISA's dot products on register-held bytes a (u8)
// and b (s8). Returns the sum of all 32-bit accumulators, which is a * b * macs_per_iteration *
// iterations when no lane overflows (a test checks it, so the loop cannot be optimised away).
int64_t int8_dot_probe_loop(Int8DotIsa isa, int64_t iterations, uint8_t a, int8_t b);
// Multiply-adds one iteration of int8_dot_probe_loop performs.
int64_t int8_dot_probe_macs_per_iteration(Int8DotIsa isa);

struct Int8Peak {
  double gops = 0.0;  // 1e9 int8 operations/s (2 per multiply-add, like GFLOP/s)
  Int8DotIsa isa = Int8DotIsa::kScalar;
};

// Best-of-several rate of n_threads OpenMP threads each running the probe loop on `isa`
// (default: the best supported). Takes about a tenth of a second.
Int8Peak measure_int8_peak(int n_threads);
Int8Peak measure_int8_peak(int n_threads, Int8DotIsa isa);

}  // namespace moa::kernels
