// Naive double-precision reference of the forward pass, for tests only: weights dequantized to
// double once, plain loops, full causal attention recomputed over the whole token sequence, no
// KV cache and nothing from src/kernels. It is the yardstick the optimised forward is held to.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "engine/model_config.h"
#include "gguf/gguf_file.h"
#include "gguf/quant.h"
#include "kernels/reference.h"

namespace moa::test {

// A dequantized tensor: rows x cols doubles, row-major (GGUF ne[1] x ne[0]).
struct RefMatrix {
  gguf::TensorType type = gguf::TensorType::kF32;  // decides how activations are rounded
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<double> values;
  const double* row(int64_t r) const { return values.data() + r * cols; }
};

inline RefMatrix ref_tensor(const gguf::GgufFile& file, const std::string& name) {
  const gguf::TensorInfo& t = file.tensor(name);
  RefMatrix m;
  m.type = t.type;
  m.cols = t.row_length();
  m.rows = t.n_rows();
  m.values.resize(static_cast<size_t>(m.rows * m.cols));
  std::vector<float> row(static_cast<size_t>(m.cols));
  const size_t stride = gguf::row_bytes(t.type, m.cols);
  for (int64_t r = 0; r < m.rows; ++r) {
    gguf::dequantize_row(t.type, t.data + stride * static_cast<size_t>(r), row.data(), m.cols);
    std::copy(row.begin(), row.end(), m.values.begin() + r * m.cols);
  }
  return m;
}

// y = W x, with x rounded as the kernels round it for W's storage type (unless `round` is off:
// gradient checks need the smooth function of the dequantized weights)
inline std::vector<double> ref_matvec(const RefMatrix& w, const std::vector<double>& x_in,
                                      bool round = true) {
  std::vector<double> x = x_in;
  if (round && kernels::reference::activation_is_rounded(w.type)) {
    const std::vector<float> x_float(x_in.begin(), x_in.end());
    const std::vector<float> seen =
        kernels::reference::activation_for(w.type, x_float.data(), w.cols);
    x.assign(seen.begin(), seen.end());
  }
  std::vector<double> y(static_cast<size_t>(w.rows), 0.0);
  for (int64_t r = 0; r < w.rows; ++r) {
    double sum = 0.0;
    for (int64_t c = 0; c < w.cols; ++c) sum += w.row(r)[c] * x[static_cast<size_t>(c)];
    y[static_cast<size_t>(r)] = sum;
  }
  return y;
}

inline std::vector<double> ref_rms_norm(const std::vector<double>& x, const RefMatrix& weight,
                                        double eps) {
  double mean_square = 0.0;
  for (double v : x) mean_square += v * v;
  mean_square /= static_cast<double>(x.size());
  const double scale = 1.0 / std::sqrt(mean_square + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * scale * weight.values[i];
  return y;
}

// Rotates each head of `x` (n_heads x head_dim) for position `pos`, llama.cpp's RoPE.
inline void ref_rope(std::vector<double>& x, int64_t n_heads, const ModelConfig& c, int64_t pos) {
  const int64_t half = c.n_rot / 2;
  const double freq_scale =
      c.rope_scaling == RopeScaling::kLinear ? 1.0 / c.rope_scale_factor : 1.0;
  for (int64_t h = 0; h < n_heads; ++h) {
    double* head = x.data() + h * c.head_dim;
    for (int64_t i = 0; i < half; ++i) {
      double theta = static_cast<double>(pos) * freq_scale *
                     std::pow(static_cast<double>(c.rope_freq_base),
                              -2.0 * static_cast<double>(i) / static_cast<double>(c.n_rot));
      if (!c.rope_freq_factors.empty()) theta /= c.rope_freq_factors[static_cast<size_t>(i)];
      const int64_t a = c.rope_type == RopeType::kNeox ? i : 2 * i;
      const int64_t b = c.rope_type == RopeType::kNeox ? i + half : 2 * i + 1;
      const double x0 = head[a], x1 = head[b];
      head[a] = x0 * std::cos(theta) - x1 * std::sin(theta);
      head[b] = x0 * std::sin(theta) + x1 * std::cos(theta);
    }
  }
}

struct RefLayer {
  RefMatrix attn_norm, wq, wk, wv, bq, bk, bv, wo, ffn_norm, gate, up, down;
};

// Logits [n_tokens][n_vocab] for every position, starting at position 0, from the embedded
// input rows x [n_tokens][n_embd] (gradient checks perturb them). With first_block > 0, x is the
// residual stream entering block first_block instead (block 2l: layer l's attention, 2l + 1:
// its FFN) and the blocks before it are skipped; round_activations = false leaves out the
// kernels' activation rounding for quantized weights.
inline std::vector<std::vector<double>> reference_forward_embedded(
    const gguf::GgufFile& file, const ModelConfig& c, std::vector<std::vector<double>> x,
    int64_t first_block = 0, bool round_activations = true) {
  const bool r = round_activations;
  const RefMatrix out_norm = ref_tensor(file, "output_norm.weight");
  const RefMatrix output = ref_tensor(file, c.tied_output ? "token_embd.weight" : "output.weight");
  const auto n = static_cast<int64_t>(x.size());
  for (int64_t l = first_block / 2; l < c.n_layer; ++l) {
    const bool attention = 2 * l >= first_block;
    const std::string p = fmt::format("blk.{}.", l);
    RefLayer w{ref_tensor(file, p + "attn_norm.weight"),
               ref_tensor(file, p + "attn_q.weight"),
               ref_tensor(file, p + "attn_k.weight"),
               ref_tensor(file, p + "attn_v.weight"),
               {},
               {},
               {},
               ref_tensor(file, p + "attn_output.weight"),
               ref_tensor(file, p + "ffn_norm.weight"),
               ref_tensor(file, p + "ffn_gate.weight"),
               ref_tensor(file, p + "ffn_up.weight"),
               ref_tensor(file, p + "ffn_down.weight")};
    if (c.has_qkv_bias) {
      w.bq = ref_tensor(file, p + "attn_q.bias");
      w.bk = ref_tensor(file, p + "attn_k.bias");
      w.bv = ref_tensor(file, p + "attn_v.bias");
    }
    std::vector<std::vector<double>> q(x.size()), k(x.size()), v(x.size());
    for (int64_t t = 0; t < n && attention; ++t) {
      const auto i = static_cast<size_t>(t);
      const std::vector<double> xn = ref_rms_norm(x[i], w.attn_norm, c.rms_eps);
      q[i] = ref_matvec(w.wq, xn, r);
      k[i] = ref_matvec(w.wk, xn, r);
      v[i] = ref_matvec(w.wv, xn, r);
      if (c.has_qkv_bias) {
        for (size_t j = 0; j < q[i].size(); ++j) q[i][j] += w.bq.values[j];
        for (size_t j = 0; j < k[i].size(); ++j) k[i][j] += w.bk.values[j];
        for (size_t j = 0; j < v[i].size(); ++j) v[i][j] += w.bv.values[j];
      }
      ref_rope(q[i], c.n_head, c, t);
      ref_rope(k[i], c.n_head_kv, c, t);
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    for (int64_t t = 0; t < n; ++t) {
      std::vector<double> att(static_cast<size_t>(c.q_dim()), 0.0);
      for (int64_t h = 0; h < c.n_head && attention; ++h) {
        const int64_t kv_h = h / c.n_group();
        std::vector<double> scores(static_cast<size_t>(t + 1));
        double max_score = -INFINITY;
        for (int64_t j = 0; j <= t; ++j) {
          double dot = 0.0;
          for (int64_t d = 0; d < c.head_dim; ++d) {
            dot += q[static_cast<size_t>(t)][static_cast<size_t>(h * c.head_dim + d)] *
                   k[static_cast<size_t>(j)][static_cast<size_t>(kv_h * c.head_dim + d)];
          }
          scores[static_cast<size_t>(j)] = dot * scale;
          max_score = std::max(max_score, dot * scale);
        }
        double sum = 0.0;
        for (double& s : scores) sum += (s = std::exp(s - max_score));
        for (int64_t j = 0; j <= t; ++j) {
          for (int64_t d = 0; d < c.head_dim; ++d) {
            att[static_cast<size_t>(h * c.head_dim + d)] +=
                scores[static_cast<size_t>(j)] / sum *
                v[static_cast<size_t>(j)][static_cast<size_t>(kv_h * c.head_dim + d)];
          }
        }
      }
      std::vector<double>& xt = x[static_cast<size_t>(t)];
      if (attention) {
        const std::vector<double> o = ref_matvec(w.wo, att, r);
        for (size_t j = 0; j < xt.size(); ++j) xt[j] += o[j];
      }
      const std::vector<double> xn = ref_rms_norm(xt, w.ffn_norm, c.rms_eps);
      const std::vector<double> g = ref_matvec(w.gate, xn, r), u = ref_matvec(w.up, xn, r);
      std::vector<double> hidden(g.size());
      for (size_t j = 0; j < g.size(); ++j) hidden[j] = g[j] / (1.0 + std::exp(-g[j])) * u[j];
      const std::vector<double> down = ref_matvec(w.down, hidden, r);
      for (size_t j = 0; j < xt.size(); ++j) xt[j] += down[j];
    }
  }
  std::vector<std::vector<double>> logits;
  for (const std::vector<double>& xt : x) {
    logits.push_back(ref_matvec(output, ref_rms_norm(xt, out_norm, c.rms_eps), r));
  }
  return logits;
}

// Logits [n_tokens][n_vocab] for every position of `tokens`, starting at position 0.
inline std::vector<std::vector<double>> reference_forward(const gguf::GgufFile& file,
                                                          const ModelConfig& c,
                                                          const std::vector<int32_t>& tokens) {
  const RefMatrix embd = ref_tensor(file, "token_embd.weight");
  std::vector<std::vector<double>> x;
  for (int32_t token : tokens) x.emplace_back(embd.row(token), embd.row(token) + c.n_embd);
  return reference_forward_embedded(file, c, std::move(x));
}

}  // namespace moa::test
