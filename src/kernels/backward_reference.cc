// Double-precision references of the backward kernels, line by line from the definitions:
// the chain rule written out per element, attention with every softmax row materialised. The
// forwards here exist so that finite differences can check the backwards in double.
#include "kernels/backward_reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "gguf/quant.h"

namespace moa::kernels::reference {
namespace {

double inverse_rms(const double* x, int64_t n, double eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * x[i];
  return 1.0 / std::sqrt(sum / static_cast<double>(n) + eps);
}

double sigmoid(double g) { return 1.0 / (1.0 + std::exp(-g)); }

// Rotates every pair of x by +theta (direction 1) or -theta (direction -1, the transpose).
void rotate(double* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
            const int32_t* positions, const RopeParams& params, double direction) {
  const int64_t half = params.n_rot / 2;
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      double theta = positions[t] * std::pow(static_cast<double>(params.freq_base),
                                             -2.0 * static_cast<double>(i) / params.n_rot);
      theta *= params.freq_scale;
      if (params.freq_factors != nullptr) theta /= params.freq_factors[i];
      const double c = std::cos(theta), s = direction * std::sin(theta);
      for (int64_t h = 0; h < n_heads; ++h) {
        double* v = x + (t * n_heads + h) * head_dim;
        double* a = v + (params.neox ? i : 2 * i);
        double* b = v + (params.neox ? i + half : 2 * i + 1);
        const double x0 = *a, x1 = *b;
        *a = x0 * c - x1 * s;
        *b = x0 * s + x1 * c;
      }
    }
  }
}

// Row r of W dequantized to double.
std::vector<double> weight_row(const WeightMatrix& w, int64_t r) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  gguf::dequantize_row(w.type,
                       static_cast<const uint8_t*>(w.data) + r * gguf::row_bytes(w.type, w.cols),
                       row.data(), w.cols);
  return {row.begin(), row.end()};
}

double dot(const double* a, const double* b, int64_t n) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// Attention of query head h at query i over keys 0..i: the softmax row and its log-sum-exp.
struct SoftmaxRow {
  std::vector<double> a;
  double lse = -std::numeric_limits<double>::infinity();
};

const double* key_row(const AttentionShape& shape, const double* k, int64_t j, int64_t h) {
  const int64_t group = shape.n_head / shape.n_head_kv;
  return k + (j * shape.n_head_kv + h / group) * shape.head_dim;
}

SoftmaxRow softmax_row(const AttentionShape& shape, const AttentionInputs& in, int64_t h, int64_t i,
                       const AttentionEntry& removed) {
  const double* q = in.q + (i * shape.n_head + h) * shape.head_dim;
  SoftmaxRow row;
  row.a.assign(static_cast<size_t>(i + 1), -std::numeric_limits<double>::infinity());
  double max = row.lse;
  for (int64_t j = 0; j <= i; ++j) {
    if (h == removed.head && i == removed.query && j == removed.key) continue;
    row.a[static_cast<size_t>(j)] =
        shape.scale * dot(q, key_row(shape, in.k, j, h), shape.head_dim);
    max = std::max(max, row.a[static_cast<size_t>(j)]);
  }
  double sum = 0.0;
  for (double& s : row.a) {
    s = std::isinf(s) ? 0.0 : std::exp(s - max);
    sum += s;
  }
  if (sum == 0.0) return row;
  for (double& s : row.a) s /= sum;
  row.lse = max + std::log(sum);
  return row;
}

// g_j = dL/dA_j = d_out_i . v_j over the row's keys, and D = sum_j A_j g_j.
std::vector<double> row_gradient(const AttentionShape& shape, const AttentionInputs& in,
                                 const double* d_out, int64_t h, int64_t i) {
  std::vector<double> g(static_cast<size_t>(i + 1));
  for (int64_t j = 0; j <= i; ++j) {
    g[static_cast<size_t>(j)] = dot(d_out + (i * shape.n_head + h) * shape.head_dim,
                                    key_row(shape, in.v, j, h), shape.head_dim);
  }
  return g;
}

}  // namespace

void rms_norm(const double* x, const double* weight, int64_t n, int64_t n_tokens, double eps,
              double* y) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    const double inv = inverse_rms(x + t * n, n, eps);
    for (int64_t i = 0; i < n; ++i) y[t * n + i] = x[t * n + i] * inv * weight[i];
  }
}

void swiglu(const double* gate, const double* up, int64_t n, double* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

void rope(double* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions,
          const RopeParams& params) {
  rotate(x, n_tokens, n_heads, head_dim, positions, params, 1.0);
}

void matmul(const WeightMatrix& w, const double* x, int64_t n_tokens, double* y) {
  for (int64_t r = 0; r < w.rows; ++r) {
    const std::vector<double> row = weight_row(w, r);
    for (int64_t t = 0; t < n_tokens; ++t)
      y[t * w.rows + r] = dot(row.data(), x + t * w.cols, w.cols);
  }
}

void rms_norm_backward(const double* x, const double* weight, const double* dy, int64_t n,
                       int64_t n_tokens, double eps, double* dx) {
  // y_i = x_i inv w_i with d inv / d x_k = -inv^3 x_k / n.
  for (int64_t t = 0; t < n_tokens; ++t) {
    const double* xt = x + t * n;
    const double inv = inverse_rms(xt, n, eps);
    double coupling = 0.0;
    for (int64_t i = 0; i < n; ++i) coupling += dy[t * n + i] * weight[i] * xt[i];
    for (int64_t k = 0; k < n; ++k) {
      dx[t * n + k] = dy[t * n + k] * weight[k] * inv -
                      coupling * inv * inv * inv * xt[k] / static_cast<double>(n);
    }
  }
}

void swiglu_backward(const double* gate, const double* up, const double* d_hidden, int64_t n,
                     double* d_gate, double* d_up) {
  for (int64_t i = 0; i < n; ++i) {
    const double s = sigmoid(gate[i]);
    d_up[i] = d_hidden[i] * gate[i] * s;
    d_gate[i] = d_hidden[i] * up[i] * (s + gate[i] * s * (1.0 - s));
  }
}

void rope_backward(double* dx, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                   const int32_t* positions, const RopeParams& params) {
  rotate(dx, n_tokens, n_heads, head_dim, positions, params, -1.0);
}

void matmul_transposed(const WeightMatrix& w, const double* dy, int64_t n_tokens, double* dx) {
  std::fill_n(dx, n_tokens * w.cols, 0.0);
  for (int64_t r = 0; r < w.rows; ++r) {
    const std::vector<double> row = weight_row(w, r);
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int64_t c = 0; c < w.cols; ++c) {
        dx[t * w.cols + c] += dy[t * w.rows + r] * row[static_cast<size_t>(c)];
      }
    }
  }
}

void attention_forward(const AttentionShape& shape, const AttentionInputs& in, double* out,
                       double* lse, const AttentionEntry& removed) {
  const int64_t hd = shape.head_dim;
  for (int64_t i = 0; i < in.n; ++i) {
    for (int64_t h = 0; h < shape.n_head; ++h) {
      const SoftmaxRow row = softmax_row(shape, in, h, i, removed);
      double* o = out + (i * shape.n_head + h) * hd;
      std::fill_n(o, hd, 0.0);
      for (int64_t j = 0; j <= i; ++j) {
        const double* v = key_row(shape, in.v, j, h);
        for (int64_t c = 0; c < hd; ++c) o[c] += row.a[static_cast<size_t>(j)] * v[c];
      }
      if (lse != nullptr) lse[i * shape.n_head + h] = row.lse;
    }
  }
}

void attention_backward(const AttentionShape& shape, const AttentionInputs& in, const double* d_out,
                        double* dq, double* dk, double* dv) {
  const int64_t hd = shape.head_dim, group = shape.n_head / shape.n_head_kv;
  std::fill_n(dq, in.n * shape.n_head * hd, 0.0);
  std::fill_n(dk, in.n * shape.n_head_kv * hd, 0.0);
  std::fill_n(dv, in.n * shape.n_head_kv * hd, 0.0);
  for (int64_t i = 0; i < in.n; ++i) {
    for (int64_t h = 0; h < shape.n_head; ++h) {
      const std::vector<double> a = softmax_row(shape, in, h, i, {}).a;
      const std::vector<double> g = row_gradient(shape, in, d_out, h, i);
      const double d = dot(a.data(), g.data(), i + 1);
      const int64_t qi = (i * shape.n_head + h) * hd;
      for (int64_t j = 0; j <= i; ++j) {
        const auto js = static_cast<size_t>(j);
        const double ds = a[js] * (g[js] - d);  // dL/dS_ij of the softmax
        const int64_t kj = (j * shape.n_head_kv + h / group) * hd;
        for (int64_t c = 0; c < hd; ++c) {
          dq[qi + c] += shape.scale * ds * in.k[kj + c];
          dk[kj + c] += shape.scale * ds * in.q[qi + c];
          dv[kj + c] += a[js] * d_out[qi + c];
        }
      }
    }
  }
}

std::vector<double> attention_influence(const AttentionShape& shape, const AttentionInputs& in,
                                        const double* d_out) {
  const int64_t n = in.n;
  std::vector<double> e(static_cast<size_t>(shape.n_head * n * n), 0.0);
  for (int64_t h = 0; h < shape.n_head; ++h) {
    for (int64_t i = 0; i < n; ++i) {
      const std::vector<double> a = softmax_row(shape, in, h, i, {}).a;
      const std::vector<double> g = row_gradient(shape, in, d_out, h, i);
      for (int64_t j = 0; j <= i; ++j) {
        double rest_a = 0.0, rest_ag = 0.0;  // the row's other keys
        for (int64_t m = 0; m <= i; ++m) {
          if (m == j) continue;
          rest_a += a[static_cast<size_t>(m)];
          rest_ag += a[static_cast<size_t>(m)] * g[static_cast<size_t>(m)];
        }
        const auto js = static_cast<size_t>(j);
        const double mean = rest_a > 0.0 ? rest_ag / rest_a : 0.0;
        e[static_cast<size_t>((h * n + i) * n + j)] = -a[js] * (g[js] - mean);
      }
    }
  }
  return e;
}

InfluenceHistogram influence_histogram(const AttentionShape& shape, int64_t n,
                                       const std::vector<double>& influence, int64_t sinks) {
  const int64_t group = shape.n_head / shape.n_head_kv;
  InfluenceHistogram hist;
  hist.reset(shape.n_head_kv, n);
  for (int64_t h = 0; h < shape.n_head; ++h) {
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j <= i; ++j) {
        const double e = influence[static_cast<size_t>((h * n + i) * n + j)];
        const auto g = static_cast<size_t>(h / group);
        if (j < sinks) {
          hist.sink[g] += std::fabs(e);
          hist.signed_sink[g] += e;
        } else {
          hist.at(h / group, i - j) += std::fabs(e);
          hist.signed_by_distance[g * static_cast<size_t>(n) + static_cast<size_t>(i - j)] += e;
        }
      }
    }
  }
  return hist;
}

}  // namespace moa::kernels::reference
