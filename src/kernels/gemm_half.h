// Prefill GEMM for F16 and BF16 weights on AVX-512 (gemm_f16.cc), chosen per CPU at run time;
// matmul() falls back to dequantized panels + OpenBLAS sgemm where this returns kNone.
// Internal to kernels/.
#pragma once

#include <cstdint>

#include "gguf/types.h"
#include "kernels/kernels.h"

namespace moa::kernels {

enum class HalfGemm {
  kNone,     // no AVX-512 here (or MOA_F32_KERNELS=1): dequantize + sgemm
  kF16Fma,   // F16 weights widened to F32 in packed panels, F32 FMAs (products exact)
  kBf16Dot,  // BF16 weights x BF16 activations with vdpbf16ps (products exact, F32 sums)
};

// The kernel this CPU runs for weights of `type`; kNone for other types.
HalfGemm half_gemm_kind(gguf::TensorType type);

// True when matmul_half runs on AMX-BF16 tiles (CPU, OS permission, MOA_NO_AMX unset): BF16
// weights with exact products, F16 weights as BF16 high parts + remainders with all but the
// remainders' product (under 2^-18 of each product left out).
bool half_gemm_uses_amx();

// Y[t] = W X[t] for F16/BF16 weights, x already rounded to the weight's format (F16 or BF16
// values, as round_activation_grid leaves them). Requires half_gemm_kind(w.type) != kNone.
// allow_amx = false keeps the AVX-512 kernels where AMX would run (tests compare the two).
void matmul_half(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, int n_threads,
                 bool allow_amx = true);

// True unless MOA_F32_KERNELS=1 in the environment (read once): the switch that keeps the
// dequantize + sgemm prefill path for comparisons such as `moa bench`.
bool low_precision_kernels_enabled();

}  // namespace moa::kernels
