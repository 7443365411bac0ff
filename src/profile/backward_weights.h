// The products dx = W^T dy of the profiler's backward. Where it pays (block-quantized weights
// on a CPU with the int8 GEMM: kernels::transpose_to_q8_0_pays), W^T is built once as a Q8_0
// matrix of its own and multiplied by the forward's int8 GEMM, which is ~1.5x faster than
// dequantized F32 panels through sgemm and rounds dy to Q8_0 as the forward rounds activations
// (docs/profile.md states the error). Otherwise, or when built `exact`, every product runs
// kernels::matmul_transposed on F32 panels of the stored weights.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "engine/forward.h"
#include "kernels/backward.h"

namespace moa {

class BackwardWeights {
 public:
  // Each transpose is dropped at the next release(), i.e. built once per layer and sample,
  // until keep_all() keeps them for later samples.
  BackwardWeights(const Model& model, bool exact);

  // dx = W^T dy for n rows of dy ([n][w.rows]); dx is [n][w.cols]. `w` must be one of the
  // model's weight matrices (its transpose is looked up by its data).
  void multiply(const kernels::WeightMatrix& w, const float* dy, int64_t n, float* dx,
                int n_threads);
  // Drops the transposes built since the last call, unless they are kept.
  void release();
  // Builds every transpose now and keeps them for every later sample (memory: bytes_if_kept).
  void keep_all(int n_threads);

  // InfluenceProfile::backward of the samples this multiplies: "exact" unless a weight pays.
  const char* mode() const { return bytes_if_kept_ > 0 ? "q8_0-transposes" : "exact"; }
  // Bytes of every transpose this model would get (0 when exact or none pays).
  int64_t bytes_if_kept() const { return bytes_if_kept_; }
  int64_t bytes_held() const;

 private:
  // The transpose of w, built now if needed; null when w is multiplied on exact panels.
  const kernels::TransposedWeight* transpose(const kernels::WeightMatrix& w, int n_threads);

  const Model& model_;
  bool exact_;
  bool keep_ = false;
  int64_t bytes_if_kept_ = 0;
  std::unordered_map<const void*, kernels::TransposedWeight> transposes_;
};

}  // namespace moa
