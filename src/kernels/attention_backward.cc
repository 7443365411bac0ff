// Flash-attention-2 backward on the CPU. The inputs are first regrouped head-major (KV head g's
// rows [g][position][head in group][head_dim]) so that a tile of 64 positions is one contiguous
// matrix for OpenBLAS sgemm; per tile P = exp(S - lse) is recomputed from the forward's row
// statistic and dS = P (dP - D) from dP = dO V^T and D = dO . O. One pass over the tiles: a task
// owns a query tile of one KV head, accumulates its dQ over the key tiles it sees, adds the
// influence |E| (which needs the same P, dP and dS) into its thread's histograms, and adds the
// tile's dK and dV into its thread's own full-length dK/dV of that KV head, summed over threads
// at the end (n * head_dim floats per thread and head it works on; linear in n). Tasks go to
// threads round robin, so the sums are the same on every run with the same thread count.
#include "kernels/attention_backward.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "hwy/highway.h"
#include "kernels/attention_tile.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

constexpr int64_t kTile = kKeyTile;   // query positions per tile
constexpr int64_t kKeys = 4 * kTile;  // keys per tile: more work per sgemm call, fewer packings
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Moves rows of `width` floats between [n][n_groups][width] (to_heads) and [n_groups][n][width].
void regroup(const float* src, float* dst, int64_t n, int64_t n_groups, int64_t width,
             bool to_heads) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t g = 0; g < n_groups; ++g) {
      const int64_t by_position = (i * n_groups + g) * width, by_head = (g * n + i) * width;
      std::copy_n(src + (to_heads ? by_position : by_head), width,
                  dst + (to_heads ? by_head : by_position));
    }
  }
}

std::vector<float> to_heads(const float* src, int64_t n, int64_t n_groups, int64_t width) {
  std::vector<float> dst(static_cast<size_t>(n * n_groups * width));
  regroup(src, dst.data(), n, n_groups, width, true);
  return dst;
}

void sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b,
              static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

void validate(const AttentionShape& shape, const AttentionSequence& seq) {
  if (shape.n_head <= 0 || shape.n_head_kv <= 0 || shape.n_head % shape.n_head_kv != 0) {
    fail("attention backward: n_head {} / n_head_kv {}: expected a positive multiple", shape.n_head,
         shape.n_head_kv);
  }
  if (shape.head_dim <= 0) fail("attention backward: head_dim {}: expected > 0", shape.head_dim);
  if (seq.n < 0) fail("attention backward: n {}: expected >= 0", seq.n);
  if (seq.n > 0 && (seq.q == nullptr || seq.k == nullptr || seq.v == nullptr)) {
    fail("attention backward: q, k and v must be given");
  }
}

// The forward's tensors regrouped head-major, plus D = dO . O per row.
struct Problem {
  int64_t n = 0, group = 1, hd = 0, n_tiles = 0;
  float scale = 1.0f;
  std::vector<float> q, k, v, d_out, lse, delta;

  // First element of KV head g's row block at `position` in a [g][n][rows][width] array.
  static int64_t offset(int64_t g, int64_t n, int64_t position, int64_t rows, int64_t width) {
    return ((g * n + position) * rows) * width;
  }
};

// Recomputed tile of query positions [q0, q0 + nq) x key positions [k0, k0 + nk) for every
// query head of one KV head: P, dP = dO V^T and dS = P (dP - D), rows (position, head in group)
// of kKeys columns.
class Tile {
 public:
  explicit Tile(const Problem& p)
      : p_(p),
        prob_(static_cast<size_t>(p.group * kTile * kKeys)),
        d_prob_(prob_.size()),
        d_score_(prob_.size()) {}

  void compute(int64_t g, int64_t q0, int64_t k0) {
    const int64_t n = p_.n, hd = p_.hd;
    g_ = g;
    q0_ = q0;
    k0_ = k0;
    nk_ = std::min(kKeys, std::min(n, q0 + kTile) - k0);
    rows_ = std::min(kTile, n - q0) * p_.group;
    const float* q = p_.q.data() + Problem::offset(g, n, q0, p_.group, hd);
    const float* d_out = p_.d_out.data() + Problem::offset(g, n, q0, p_.group, hd);
    sgemm(CblasNoTrans, CblasTrans, rows_, nk_, hd, p_.scale, q, hd, keys(), hd, 0.0f, prob_.data(),
          kKeys);
    sgemm(CblasNoTrans, CblasTrans, rows_, nk_, hd, 1.0f, d_out, hd,
          p_.v.data() + Problem::offset(g, n, k0, 1, hd), hd, 0.0f, d_prob_.data(), kKeys);
    const int64_t row0 = Problem::offset(g, n, q0, p_.group, 1);
    // Columns past the tile's keys may hold an earlier tile's dP: zero them (never read as
    // this tile's, and never a NaN in the influence's sums).
    if (nk_ < kKeys) {
      for (int64_t r = 0; r < rows_; ++r) {
        std::fill(d_prob_.begin() + r * kKeys + nk_, d_prob_.begin() + (r + 1) * kKeys, 0.0f);
      }
    }
    for (int64_t r = 0; r < rows_; ++r) {
      float* s = prob_.data() + r * kKeys;
      const int64_t visible = this->visible(r);
      std::fill(s + visible, s + kKeys, kNegInf);
      const float lse = p_.lse[static_cast<size_t>(row0 + r)];
      for (int64_t j = 0; j < visible; j += kTile) exp_shifted_tile(s + j, lse);
      std::fill(s + (visible + kTile - 1) / kTile * kTile, s + kKeys, 0.0f);
      const float delta = p_.delta[static_cast<size_t>(row0 + r)];
      const float* dp = d_prob_.data() + r * kKeys;
      float* ds = d_score_.data() + r * kKeys;
      for (int64_t j = 0; j < kKeys; ++j) ds[j] = s[j] * (dp[j] - delta);
    }
  }

  // Keys of the tile that row r's query sees (causal).
  int64_t visible(int64_t r) const {
    return std::clamp(q0_ + r / p_.group - k0_ + 1, int64_t{0}, nk_);
  }
  const float* keys() const { return p_.k.data() + Problem::offset(g_, p_.n, k0_, 1, p_.hd); }
  const float* prob() const { return prob_.data(); }
  const float* d_prob() const { return d_prob_.data(); }
  const float* d_score() const { return d_score_.data(); }
  int64_t rows() const { return rows_; }
  int64_t n_keys() const { return nk_; }

 private:
  const Problem& p_;
  std::vector<float> prob_, d_prob_, d_score_;
  int64_t g_ = 0, q0_ = 0, k0_ = 0, nk_ = 0, rows_ = 0;
};

// Influence of the rows of one query tile, added to hist ([g][distance], n distances per head)
// and sink ([g]) as |E|, and as E to the same layout `signed_size` doubles further on. A key with
// A_ij > 1/2 (at most one per row) waits for the end of the row: there 1 - A_ij and D_i - A_ij g_ij
// cancel, so its E is taken from the other keys' sums.
class RowInfluence {
 public:
  RowInfluence(const Problem& p, int64_t sinks, double* hist, double* sink, size_t signed_offset)
      : p_(p), sinks_(sinks), hist_(hist), sink_(sink), signed_offset_(signed_offset) {}

  void start(int64_t g, int64_t q0, int64_t rows) {
    g_ = g;
    q0_ = q0;
    key_.assign(static_cast<size_t>(rows), -1);
    a_.assign(key_.size(), 0.0);
    grad_.assign(key_.size(), 0.0);
    rest_a_.assign(key_.size(), 0.0);
    rest_ag_.assign(key_.size(), 0.0);
  }

  // Vector over the tile's keys: E of every row, summed over the query heads of a position in
  // floats (at most `group` terms per distance), then added to the double histogram.
  void add_tile(const Tile& tile, int64_t k0) {
    const DF d;
    const auto lanes = static_cast<int64_t>(hn::Lanes(d));
    const auto half = hn::Set(d, 0.5f), one = hn::Set(d, 1.0f);
    const int64_t key_end = std::min(kKeys, (tile.n_keys() + lanes - 1) / lanes * lanes);
    for (int64_t pos = 0; pos * p_.group < tile.rows(); ++pos) {
      std::fill(abs_sum_.begin(), abs_sum_.end(), 0.0f);
      std::fill(signed_sum_.begin(), signed_sum_.end(), 0.0f);
      for (int64_t h = 0; h < p_.group; ++h) {
        const int64_t r = pos * p_.group + h;
        // Keys past the row's visible ones hold A = 0, dS = 0 and a finite dP: they add nothing.
        const float* a = tile.prob() + r * kKeys;
        const float* dp = tile.d_prob() + r * kKeys;
        const float* ds = tile.d_score() + r * kKeys;
        auto rest_a = hn::Zero(d), rest_ag = hn::Zero(d), a_max = hn::Zero(d);
        for (int64_t j = 0; j < key_end; j += lanes) {
          const auto av = hn::LoadU(d, a + j);
          const auto dominant = hn::Gt(av, half);
          a_max = hn::Max(a_max, av);
          const auto a_rest = hn::IfThenZeroElse(dominant, av);
          rest_a = hn::Add(rest_a, a_rest);
          rest_ag = hn::MulAdd(a_rest, hn::LoadU(d, dp + j), rest_ag);
          // E = -A (g - D) / (1 - A) = -dS / (1 - A)
          const auto e = hn::IfThenZeroElse(
              dominant, hn::Neg(hn::Div(hn::LoadU(d, ds + j), hn::Sub(one, av))));
          hn::StoreU(hn::Add(hn::LoadU(d, abs_sum_.data() + j), hn::Abs(e)), d,
                     abs_sum_.data() + j);
          hn::StoreU(hn::Add(hn::LoadU(d, signed_sum_.data() + j), e), d, signed_sum_.data() + j);
        }
        const auto ri = static_cast<size_t>(r);
        rest_a_[ri] += hn::GetLane(hn::SumOfLanes(d, rest_a));
        rest_ag_[ri] += hn::GetLane(hn::SumOfLanes(d, rest_ag));
        if (hn::GetLane(hn::MaxOfLanes(d, a_max)) > 0.5f) {
          for (int64_t j = 0; j < tile.visible(r); ++j) {
            if (a[j] <= 0.5f) continue;
            key_[ri] = k0 + j;
            a_[ri] = a[j];
            grad_[ri] = dp[j];
          }
        }
      }
      const int64_t query = q0_ + pos;
      for (int64_t j = 0; j < tile.visible(pos * p_.group); ++j) {
        add(query, k0 + j, abs_sum_[static_cast<size_t>(j)], signed_sum_[static_cast<size_t>(j)]);
      }
    }
  }

  // The dominant keys: E = -A (g - mean of g over the other keys, weighted by their A); a row
  // with no other key (the first query) keeps -A g, as the reference implementation does.
  void finish() {
    for (size_t r = 0; r < key_.size(); ++r) {
      if (key_[r] < 0) continue;
      const double mean = rest_a_[r] > 0.0 ? rest_ag_[r] / rest_a_[r] : 0.0;
      const double e = -a_[r] * (grad_[r] - mean);
      add(q0_ + static_cast<int64_t>(r) / p_.group, key_[r], std::fabs(e), e);
    }
  }

 private:
  void add(int64_t query, int64_t key, double abs_e, double e) {
    double* at = key < sinks_ ? sink_ + g_ : hist_ + g_ * p_.n + query - key;
    at[0] += abs_e;
    at[signed_offset_] += e;
  }

  const Problem& p_;
  int64_t sinks_;
  double* hist_;
  double* sink_;
  size_t signed_offset_;
  int64_t g_ = 0, q0_ = 0;
  std::vector<int64_t> key_;  // per row: the key with A > 1/2, or -1
  std::vector<double> a_, grad_, rest_a_, rest_ag_;
  std::vector<float> abs_sum_ = std::vector<float>(kKeys), signed_sum_ = abs_sum_;  // per key
};

}  // namespace

void InfluenceHistogram::reset(int64_t kv_heads, int64_t distances) {
  n_head_kv = kv_heads;
  max_distance = distances;
  samples = 1;
  by_distance.assign(static_cast<size_t>(kv_heads * distances), 0.0);
  sink.assign(static_cast<size_t>(kv_heads), 0.0);
  signed_by_distance = by_distance;
  signed_sink = sink;
}

void InfluenceHistogram::add(const InfluenceHistogram& other) {
  if (samples == 0 && by_distance.empty() && sink.empty()) {
    *this = other;
    return;
  }
  if (other.n_head_kv != n_head_kv) {
    fail("influence histogram: adding {} KV heads to {}", other.n_head_kv, n_head_kv);
  }
  if (other.max_distance > max_distance) {
    InfluenceHistogram grown;
    grown.reset(n_head_kv, other.max_distance);
    grown.samples = 0;
    grown.add(*this);
    *this = std::move(grown);
  }
  for (int64_t g = 0; g < n_head_kv; ++g) {
    for (int64_t d = 0; d < other.max_distance; ++d) {
      const auto to = static_cast<size_t>(g * max_distance + d);
      const auto from = static_cast<size_t>(g * other.max_distance + d);
      by_distance[to] += other.by_distance[from];
      signed_by_distance[to] += other.signed_by_distance[from];
    }
    sink[static_cast<size_t>(g)] += other.sink[static_cast<size_t>(g)];
    signed_sink[static_cast<size_t>(g)] += other.signed_sink[static_cast<size_t>(g)];
  }
  samples += other.samples;
}

double InfluenceHistogram::tail_sum(int64_t kv_head, int64_t first) const {
  double sum = 0.0;
  for (int64_t d = std::max<int64_t>(first, 0); d < max_distance; ++d) sum += at(kv_head, d);
  return sum;
}

double InfluenceHistogram::signed_tail_sum(int64_t kv_head, int64_t first) const {
  double sum = 0.0;
  for (int64_t d = std::max<int64_t>(first, 0); d < max_distance; ++d) {
    sum += signed_by_distance[static_cast<size_t>(kv_head * max_distance + d)];
  }
  return sum;
}

void attention_forward_with_stats(const AttentionShape& shape, const AttentionSequence& seq,
                                  float* out, float* lse, int n_threads) {
  validate(shape, seq);
  if (seq.n == 0) return;
  const int64_t hd = shape.head_dim;
  const std::vector<float> k = to_heads(seq.k, seq.n, shape.n_head_kv, hd);
  const std::vector<float> v = to_heads(seq.v, seq.n, shape.n_head_kv, hd);
  const KvView kv{KvType::kF32, k.data(), v.data(), seq.n * hd, seq.n};
  AttentionState state;
  state.reset(seq.n, shape.n_head, hd);
  attention_accumulate(shape, seq.q, seq.n, 0, kv, 0, {}, state, n_threads);
  attention_finish(state, out);
  for (size_t row = 0; row < state.max.size(); ++row) {
    lse[row] = state.denom[row] > 0.0f ? state.max[row] + std::log(state.denom[row]) : kNegInf;
  }
}

void attention_backward(const AttentionShape& shape, const AttentionSequence& seq, const float* out,
                        const float* lse, const float* d_out, const AttentionGradients& grads,
                        int n_threads) {
  validate(shape, seq);
  const int64_t n = seq.n, hd = shape.head_dim, n_kv = shape.n_head_kv;
  if (grads.influence != nullptr) grads.influence->reset(n_kv, n);
  if (n == 0) return;
  // OpenBLAS keeps a process-wide thread count; parallelism here comes from OpenMP tasks.
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
  Problem p;
  p.n = n;
  p.group = shape.n_head / n_kv;
  p.hd = hd;
  p.n_tiles = (n + kTile - 1) / kTile;
  p.scale = shape.scale;
  p.q = to_heads(seq.q, n, n_kv, p.group * hd);
  p.k = to_heads(seq.k, n, n_kv, hd);
  p.v = to_heads(seq.v, n, n_kv, hd);
  p.d_out = to_heads(d_out, n, n_kv, p.group * hd);
  p.lse = to_heads(lse, n, n_kv, p.group);
  std::vector<float> delta(static_cast<size_t>(n * shape.n_head));
  for (int64_t row = 0; row < n * shape.n_head; ++row) {
    delta[static_cast<size_t>(row)] = static_cast<float>(
        cblas_dsdot(static_cast<blasint>(hd), d_out + row * hd, 1, out + row * hd, 1));
  }
  p.delta = to_heads(delta.data(), n, n_kv, p.group);
  const int64_t n_tasks = n_kv * p.n_tiles;
  n_threads = std::max(1, n_threads);
  const bool key_grads = grads.dk != nullptr || grads.dv != nullptr;

  std::vector<float> dq(p.q.size());
  const size_t hist_size = static_cast<size_t>(n_kv * n);
  std::vector<std::vector<double>> hists(static_cast<size_t>(n_threads));
  // Per thread and KV head, [n][hd] sums of dK and dV, allocated when the thread first gets a
  // tile of that head (round robin gives a thread n_kv / gcd(threads, n_kv) of the heads).
  std::vector<std::vector<std::vector<float>>> dks(hists.size()), dvs(hists.size());
  const auto head_size = static_cast<size_t>(n * hd);
#pragma omp parallel num_threads(n_threads)
  {
    Tile tile(p);
    const auto me = static_cast<size_t>(omp_get_thread_num());
    std::vector<double>& hist = hists[me];
    std::vector<std::vector<float>>& dk = dks[me];
    std::vector<std::vector<float>>& dv = dvs[me];
    dk.resize(static_cast<size_t>(n_kv));
    dv.resize(dk.size());
    // [|E| by distance][|E| sinks][E by distance][E sinks]
    const size_t signed_offset = hist_size + static_cast<size_t>(n_kv);
    if (grads.influence != nullptr) hist.assign(2 * signed_offset, 0.0);
    RowInfluence influence(p, grads.sinks, hist.data(),
                           hist.empty() ? nullptr : hist.data() + hist_size, signed_offset);
    // Static round-robin (late queries, which see most keys, first): which thread sums which
    // tile, and so the sums, are fixed.
#pragma omp for schedule(static, 1)
    for (int64_t task = n_tasks - 1; task >= 0; --task) {
      const int64_t g = task % n_kv, q0 = (task / n_kv) * kTile;
      const int64_t rows = std::min(kTile, n - q0) * p.group;
      const int64_t at = Problem::offset(g, n, q0, p.group, hd);
      float* dq_tile = dq.data() + at;
      std::fill_n(dq_tile, rows * hd, 0.0f);
      if (grads.influence != nullptr) influence.start(g, q0, rows);
      for (int64_t k0 = 0; k0 <= q0; k0 += kKeys) {
        tile.compute(g, q0, k0);
        if (grads.dq != nullptr) {
          sgemm(CblasNoTrans, CblasNoTrans, tile.rows(), hd, tile.n_keys(), p.scale, tile.d_score(),
                kKeys, tile.keys(), hd, 1.0f, dq_tile, hd);
        }
        if (key_grads) {
          std::vector<float>& dk_head = dk[static_cast<size_t>(g)];
          std::vector<float>& dv_head = dv[static_cast<size_t>(g)];
          if (dk_head.empty()) {
            dk_head.assign(head_size, 0.0f);
            dv_head.assign(head_size, 0.0f);
          }
          sgemm(CblasTrans, CblasNoTrans, tile.n_keys(), hd, tile.rows(), 1.0f, tile.prob(), kKeys,
                p.d_out.data() + at, hd, 1.0f, dv_head.data() + k0 * hd, hd);
          sgemm(CblasTrans, CblasNoTrans, tile.n_keys(), hd, tile.rows(), p.scale, tile.d_score(),
                kKeys, p.q.data() + at, hd, 1.0f, dk_head.data() + k0 * hd, hd);
        }
        if (grads.influence != nullptr) influence.add_tile(tile, k0);
      }
      if (grads.influence != nullptr) influence.finish();
    }
  }
  if (key_grads) {
    std::vector<float> dk(p.k.size(), 0.0f), dv(p.v.size(), 0.0f);
#pragma omp parallel for num_threads(std::min <int64_t>(n_threads, n_kv))
    for (size_t g = 0; g < static_cast<size_t>(n_kv); ++g) {
      for (size_t t = 0; t < dks.size(); ++t) {  // in thread order: the same sums every run
        if (dks[t].empty() || dks[t][g].empty()) continue;  // not in the team, or not its head
        add_inplace(dk.data() + g * head_size, dks[t][g].data(), static_cast<int64_t>(head_size));
        add_inplace(dv.data() + g * head_size, dvs[t][g].data(), static_cast<int64_t>(head_size));
      }
    }
    if (grads.dk != nullptr) regroup(dk.data(), grads.dk, n, n_kv, hd, false);
    if (grads.dv != nullptr) regroup(dv.data(), grads.dv, n, n_kv, hd, false);
  }
  if (grads.dq != nullptr) regroup(dq.data(), grads.dq, n, n_kv, p.group * hd, false);
  if (grads.influence == nullptr) return;
  InfluenceHistogram& out_hist = *grads.influence;
  const size_t signed_offset = hist_size + static_cast<size_t>(n_kv);
  for (const std::vector<double>& hist : hists) {
    if (hist.empty()) continue;
    for (size_t i = 0; i < hist_size; ++i) {
      out_hist.by_distance[i] += hist[i];
      out_hist.signed_by_distance[i] += hist[signed_offset + i];
    }
    for (size_t g = 0; g < out_hist.sink.size(); ++g) {
      out_hist.sink[g] += hist[hist_size + g];
      out_hist.signed_sink[g] += hist[signed_offset + hist_size + g];
    }
  }
}

}  // namespace moa::kernels
