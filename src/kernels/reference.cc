// Double-precision reference kernels: each follows its definition in kernels.h line by line
// (attention materialises every score of a row and normalises once), so disagreements with the
// optimised kernels point at the optimised ones.
#include "kernels/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "gguf/quant.h"
#include "kernels/half.h"

namespace moa::kernels::reference {

double q8_0_kv_value(const void* base, int64_t index, int64_t head_dim) {
  // Row by row: a row is head_dim / block blocks of (F16 scale, block int8 values).
  const int64_t block = head_dim % 32 == 0 ? 32 : head_dim;
  const int64_t row = index / head_dim, within = index % head_dim;
  const auto* bytes = static_cast<const uint8_t*>(base) + row * (head_dim / block) * (block + 2) +
                      within / block * (block + 2);
  const double scale = gguf::fp16_to_fp32(static_cast<uint16_t>(bytes[0] | bytes[1] << 8));
  return scale * static_cast<int8_t>(bytes[2 + within % block]);
}

namespace {

double kv_value(const KvView& kv, const void* base, int64_t index, int64_t head_dim) {
  if (kv.type == KvType::kF32) return static_cast<const float*>(base)[index];
  if (kv.type == KvType::kF16) return half_to_float(static_cast<const uint16_t*>(base)[index]);
  return q8_0_kv_value(base, index, head_dim);
}

}  // namespace

bool activation_is_rounded(gguf::TensorType type) { return type != gguf::TensorType::kF32; }

namespace {

// ggml's quantize_row_q8_K_ref followed by its dequantization, for blocks of 256 values.
void round_to_q8_k(std::vector<float>& x) {
  for (size_t b = 0; b + 256 <= x.size(); b += 256) {
    float max = 0.0f, amax = 0.0f;
    for (size_t j = b; j < b + 256; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    if (amax == 0.0f) continue;  // an all-zero block stays zero
    const float iscale = -127.0f / max;
    const float scale = 1.0f / iscale;
    for (size_t j = b; j < b + 256; ++j) {
      const float q = std::min(127.0f, std::nearbyint(iscale * x[j]));  // ties to even
      x[j] = scale * q;
    }
  }
}

}  // namespace

std::vector<float> activation_for(gguf::TensorType type, const float* x, int64_t n) {
  std::vector<float> seen(x, x + n);
  if (!activation_is_rounded(type)) return seen;
  if (type == gguf::TensorType::kF16) {
    for (float& v : seen) v = gguf::fp16_to_fp32(gguf::fp32_to_fp16(v));
    return seen;
  }
  if (type == gguf::TensorType::kBF16) {
    for (float& v : seen) v = gguf::bf16_to_fp32(gguf::fp32_to_bf16(v));
    return seen;
  }
  if (type == gguf::TensorType::kQ4_K || type == gguf::TensorType::kQ5_K ||
      type == gguf::TensorType::kQ6_K) {
    round_to_q8_k(seen);
    return seen;
  }
  std::vector<uint8_t> blocks(gguf::row_bytes(gguf::TensorType::kQ8_0, n));
  gguf::quantize_row(gguf::TensorType::kQ8_0, x, blocks.data(), n);
  gguf::dequantize_row(gguf::TensorType::kQ8_0, blocks.data(), seen.data(), n);
  return seen;
}

void matvec(const WeightMatrix& w, const float* x_in, float* y) {
  const std::vector<float> x = activation_for(w.type, x_in, w.cols);
  const size_t row_bytes = gguf::row_bytes(w.type, w.cols);
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    gguf::dequantize_row(w.type, static_cast<const uint8_t*>(w.data) + r * row_bytes, row.data(),
                         w.cols);
    double sum = 0.0;
    for (int64_t c = 0; c < w.cols; ++c)
      sum += static_cast<double>(row[static_cast<size_t>(c)]) * x[static_cast<size_t>(c)];
    y[r] = static_cast<float>(sum);
  }
}

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y) {
  for (int64_t t = 0; t < n_tokens; ++t) matvec(w, x + t * w.cols, y + t * w.rows);
}

void rms_norm(const float* x, const float* weight, int64_t n, int64_t n_tokens, float eps,
              float* y) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[t * n + i]) * x[t * n + i];
    const double inv = 1.0 / std::sqrt(sum / static_cast<double>(n) + eps);
    for (int64_t i = 0; i < n; ++i)
      y[t * n + i] = static_cast<float>(x[t * n + i] * inv * weight[i]);
  }
}

void swiglu(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions,
          const RopeParams& params) {
  const int64_t half = params.n_rot / 2;
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (t * n_heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        double theta = positions[t] * std::pow(static_cast<double>(params.freq_base),
                                               -2.0 * static_cast<double>(i) / params.n_rot);
        theta *= params.freq_scale;
        if (params.freq_factors != nullptr) theta /= params.freq_factors[i];
        const int64_t a = params.neox ? i : 2 * i;
        const int64_t b = params.neox ? i + half : 2 * i + 1;
        const double x0 = v[a], x1 = v[b];
        v[a] = static_cast<float>(x0 * std::cos(theta) - x1 * std::sin(theta));
        v[b] = static_cast<float>(x0 * std::sin(theta) + x1 * std::cos(theta));
      }
    }
  }
}

bool key_visible(const BandMask& mask, int64_t pos, int64_t key) {
  return key <= pos && (key < mask.sinks || pos - key < mask.span);
}

void attention(const AttentionShape& shape, const float* q, int64_t n_query, int64_t q_pos0,
               const KvView& kv, std::span<const BandMask> masks, float* out) {
  const int64_t group = shape.n_head / shape.n_head_kv;
  const int64_t hd = shape.head_dim;
  std::vector<double> scores(static_cast<size_t>(kv.n_keys));
  for (int64_t qi = 0; qi < n_query; ++qi) {
    const int64_t pos = q_pos0 + qi;
    for (int64_t h = 0; h < shape.n_head; ++h) {
      const int64_t g = h / group;
      const BandMask mask = masks.empty() ? BandMask{} : masks[static_cast<size_t>(g)];
      const float* qv = q + (qi * shape.n_head + h) * hd;
      double max_score = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < kv.n_keys; ++j) {
        auto& s = scores[static_cast<size_t>(j)];
        s = -std::numeric_limits<double>::infinity();
        if (!key_visible(mask, pos, j)) continue;
        s = 0.0;
        for (int64_t i = 0; i < hd; ++i)
          s += qv[i] * kv_value(kv, kv.k, g * kv.head_stride + j * hd + i, hd);
        s *= shape.scale;
        max_score = std::max(max_score, s);
      }
      float* o = out + (qi * shape.n_head + h) * hd;
      std::vector<double> acc(static_cast<size_t>(hd), 0.0);
      double denom = 0.0;
      for (int64_t j = 0; j < kv.n_keys && max_score > -std::numeric_limits<double>::infinity();
           ++j) {
        if (!key_visible(mask, pos, j)) continue;
        const double p = std::exp(scores[static_cast<size_t>(j)] - max_score);
        denom += p;
        for (int64_t i = 0; i < hd; ++i)
          acc[static_cast<size_t>(i)] +=
              p * kv_value(kv, kv.v, g * kv.head_stride + j * hd + i, hd);
      }
      for (int64_t i = 0; i < hd; ++i)
        o[i] = denom > 0.0 ? static_cast<float>(acc[static_cast<size_t>(i)] / denom) : 0.0f;
    }
  }
}

}  // namespace moa::kernels::reference
