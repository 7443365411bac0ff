// BackwardWeights: transposes built on first use, keyed by the stored matrix they came from.
#include "profile/backward_weights.h"

#include <vector>

#include "gguf/quant.h"
#include "util/error.h"

namespace moa {

namespace {

// The matrices of the layers the backward multiplies by their transposes.
std::vector<const kernels::WeightMatrix*> layer_matrices(const Model& model) {
  std::vector<const kernels::WeightMatrix*> out;
  for (const LayerWeights& l : model.weights().layers) {
    out.insert(out.end(), {&l.attn_q, &l.attn_k, &l.attn_v, &l.attn_output, &l.ffn_gate, &l.ffn_up,
                           &l.ffn_down});
  }
  return out;
}

}  // namespace

BackwardWeights::BackwardWeights(const Model& model, bool exact) : model_(model), exact_(exact) {
  if (exact_) return;
  for (const kernels::WeightMatrix* w : layer_matrices(model)) {
    if (!kernels::transpose_to_q8_0_pays(*w)) continue;
    bytes_if_kept_ +=
        static_cast<int64_t>(gguf::row_bytes(gguf::TensorType::kQ8_0, w->rows)) * w->cols;
  }
}

const kernels::TransposedWeight* BackwardWeights::transpose(const kernels::WeightMatrix& w,
                                                            int n_threads) {
  if (exact_ || !kernels::transpose_to_q8_0_pays(w)) return nullptr;
  auto it = transposes_.find(w.data);
  if (it == transposes_.end()) {
    it = transposes_.emplace(w.data, kernels::transpose_to_q8_0(w, n_threads)).first;
  }
  const kernels::WeightMatrix& t = it->second.w;
  if (t.rows != w.cols || t.cols != w.rows) {  // another view of the same bytes
    fail("backward: a {}x{} weight shares its data with a {}x{} one", w.rows, w.cols, t.cols,
         t.rows);
  }
  return &it->second;
}

void BackwardWeights::multiply(const kernels::WeightMatrix& w, const float* dy, int64_t n,
                               float* dx, int n_threads) {
  if (const kernels::TransposedWeight* t = transpose(w, n_threads)) {
    kernels::matmul(t->w, dy, n, dx, n_threads);
  } else {
    kernels::matmul_transposed(w, dy, n, dx, n_threads);
  }
}

void BackwardWeights::keep_all(int n_threads) {
  keep_ = true;
  for (const kernels::WeightMatrix* w : layer_matrices(model_)) (void)transpose(*w, n_threads);
}

void BackwardWeights::release() {
  if (!keep_) transposes_.clear();
}

int64_t BackwardWeights::bytes_held() const {
  int64_t bytes = 0;
  for (const auto& [data, t] : transposes_) bytes += static_cast<int64_t>(t.bytes.size());
  return bytes;
}

}  // namespace moa
