// Attention backward and MoA influence: the double reference against finite differences and
// against really masking softmax entries, then the tiled F32 kernels against the reference over
// GQA groups 1/2/4, head_dim not a multiple of 16, n = 1 and n across several tiles, sink
// counts 0/1/4 and more sinks than tokens.
#include "kernels/attention_backward.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/backward_reference.h"
#include "kernels/gradient_check.h"
#include "kernels/random_data.h"
#include "kernels/reference.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

using testing::dot;
using testing::gradient_error;
using testing::max_abs;
using testing::numeric_gradient;
using testing::random_floats;
using testing::relative_error;
using testing::to_double;

struct Case {
  int64_t n_head, n_head_kv, head_dim, n;
  float sharpness = 1.0f;  // multiplies the score scale: larger gives rows dominated by a key
};

// The last case spans three 256-key blocks of the backward's tiles (the last one partial).
const Case kCases[] = {{4, 4, 16, 1},  {4, 2, 20, 70}, {8, 2, 64, 130},       {4, 1, 13, 65},
                       {2, 2, 8, 200}, {8, 8, 32, 64}, {4, 2, 16, 100, 6.0f}, {4, 2, 16, 600}};

struct Problem {
  AttentionShape shape;
  std::vector<float> q, k, v, d_out;
  std::vector<double> qd, kd, vd, d_out_d;
  int64_t n = 0;

  AttentionSequence seq() const { return {q.data(), k.data(), v.data(), n}; }
  reference::AttentionInputs inputs() const { return {qd.data(), kd.data(), vd.data(), n}; }
};

Problem make_problem(const Case& c, uint32_t seed) {
  Problem p;
  p.n = c.n;
  p.shape = {c.n_head, c.n_head_kv, c.head_dim,
             c.sharpness / std::sqrt(static_cast<float>(c.head_dim))};
  p.q = random_floats(c.n * c.n_head * c.head_dim, seed, 2.0f);
  p.k = random_floats(c.n * c.n_head_kv * c.head_dim, seed + 1, 2.0f);
  p.v = random_floats(c.n * c.n_head_kv * c.head_dim, seed + 2);
  p.d_out = random_floats(c.n * c.n_head * c.head_dim, seed + 3);
  p.qd = to_double(p.q);
  p.kd = to_double(p.k);
  p.vd = to_double(p.v);
  p.d_out_d = to_double(p.d_out);
  return p;
}

std::string label(const Case& c) {
  return std::to_string(c.n_head) + "/" + std::to_string(c.n_head_kv) + " hd " +
         std::to_string(c.head_dim) + " n " + std::to_string(c.n);
}

// The kernels' forward and backward of one problem.
struct KernelRun {
  std::vector<float> out, lse, dq, dk, dv;
  InfluenceHistogram influence;
};

KernelRun run_kernels(const Problem& p, int64_t sinks, int threads) {
  KernelRun run;
  run.out.resize(p.q.size());
  run.lse.resize(static_cast<size_t>(p.n * p.shape.n_head));
  attention_forward_with_stats(p.shape, p.seq(), run.out.data(), run.lse.data(), threads);
  run.dq.resize(p.q.size());
  run.dk.resize(p.k.size());
  run.dv.resize(p.v.size());
  const AttentionGradients grads{run.dq.data(), run.dk.data(), run.dv.data(), &run.influence,
                                 sinks};
  attention_backward(p.shape, p.seq(), run.out.data(), run.lse.data(), p.d_out.data(), grads,
                     threads);
  return run;
}

TEST(AttentionBackward, ForwardWithStatsMatchesReference) {
  for (const Case& c : kCases) {
    const Problem p = make_problem(c, 100);
    const KernelRun run = run_kernels(p, 0, 2);
    std::vector<double> out(p.q.size()), lse(run.lse.size());
    reference::attention_forward(p.shape, p.inputs(), out.data(), lse.data());
    EXPECT_LE(relative_error(run.out, out), 1e-5) << label(c);
    EXPECT_LE(relative_error(run.lse, lse), 1e-6) << label(c);
  }
}

TEST(AttentionBackward, ReferenceMatchesFiniteDifferences) {
  const Problem p = make_problem({4, 2, 3, 6}, 200);
  const auto r = to_double(random_floats(static_cast<int64_t>(p.q.size()), 201));
  std::vector<double> dq(p.qd.size()), dk(p.kd.size()), dv(p.vd.size());
  reference::attention_backward(p.shape, p.inputs(), r.data(), dq.data(), dk.data(), dv.data());
  auto loss = [&](const std::vector<double>& q, const std::vector<double>& k,
                  const std::vector<double>& v) {
    std::vector<double> out(q.size());
    reference::attention_forward(p.shape, {q.data(), k.data(), v.data(), p.n}, out.data(), nullptr);
    return dot(r, out);
  };
  EXPECT_LE(
      gradient_error(numeric_gradient(p.qd, [&](auto& q) { return loss(q, p.kd, p.vd); }), dq),
      1e-8);
  EXPECT_LE(
      gradient_error(numeric_gradient(p.kd, [&](auto& k) { return loss(p.qd, k, p.vd); }), dk),
      1e-8);
  EXPECT_LE(
      gradient_error(numeric_gradient(p.vd, [&](auto& v) { return loss(p.qd, p.kd, v); }), dv),
      1e-8);
}

TEST(AttentionBackward, MatchesReference) {
  for (const Case& c : kCases) {
    const Problem p = make_problem(c, 300);
    const KernelRun run = run_kernels(p, 0, 2);
    std::vector<double> dq(p.qd.size()), dk(p.kd.size()), dv(p.vd.size());
    reference::attention_backward(p.shape, p.inputs(), p.d_out_d.data(), dq.data(), dk.data(),
                                  dv.data());
    EXPECT_LE(relative_error(run.dq, dq, 0.1), 2e-5) << label(c);  // n = 1: dq = dk = 0
    EXPECT_LE(relative_error(run.dk, dk, 0.1), 2e-5) << label(c);  // n = 1: dq = dk = 0
    EXPECT_LE(relative_error(run.dv, dv, 0.1), 2e-5) << label(c);  // n = 1: dq = dk = 0
  }
}

// dQ is summed by one task per query tile; dK and dV are summed per thread, then over threads:
// bit for bit the same for a thread count, within rounding across thread counts.
TEST(AttentionBackward, GradientsAreTheSameForAThreadCountAndCloseAcross) {
  const Problem p = make_problem({8, 2, 24, 150}, 400);
  const KernelRun one = run_kernels(p, 4, 1), three = run_kernels(p, 4, 3);
  EXPECT_EQ(one.dq, three.dq);
  EXPECT_LE(relative_error(three.dk, to_double(one.dk)), 1e-6);
  EXPECT_LE(relative_error(three.dv, to_double(one.dv)), 1e-6);
  const KernelRun again = run_kernels(p, 4, 3);  // same threads: the very same sums
  EXPECT_EQ(again.dk, three.dk);
  EXPECT_EQ(again.dv, three.dv);
  EXPECT_EQ(again.influence.by_distance, three.influence.by_distance);
  EXPECT_EQ(again.influence.sink, three.influence.sink);
}

TEST(AttentionInfluence, MaskingAnEntryChangesALinearLossByExactlyE) {
  // L = sum r * out is linear in A, so E (first order in A) is exact for any single entry.
  const Problem p = make_problem({2, 1, 8, 12}, 500);
  std::vector<double> base(p.qd.size());
  reference::attention_forward(p.shape, p.inputs(), base.data(), nullptr);
  const std::vector<double> e =
      reference::attention_influence(p.shape, p.inputs(), p.d_out_d.data());
  for (int64_t h = 0; h < 2; ++h) {
    for (int64_t i = 1; i < p.n; ++i) {
      for (int64_t j = 0; j <= i; ++j) {
        std::vector<double> masked(base.size());
        reference::attention_forward(p.shape, p.inputs(), masked.data(), nullptr, {h, i, j});
        const double change = dot(p.d_out_d, masked) - dot(p.d_out_d, base);
        const double predicted = e[static_cast<size_t>((h * p.n + i) * p.n + j)];
        EXPECT_NEAR(change, predicted, 1e-9 * (1.0 + std::fabs(predicted))) << h << i << j;
      }
    }
  }
}

TEST(AttentionInfluence, PredictsMaskingToFirstOrderForANonlinearLoss) {
  // L = sum r * out + |out|^2 / 2 (d_out = r + out): masking a small A_ij changes L by
  // E_ij + O(A_ij^2).
  const Problem p = make_problem({2, 1, 8, 60, 3.0f}, 600);
  const auto r = p.d_out_d;
  auto loss = [&](const std::vector<double>& out) { return dot(r, out) + 0.5 * dot(out, out); };
  std::vector<double> base(p.qd.size()), lse(static_cast<size_t>(p.n * 2));
  reference::attention_forward(p.shape, p.inputs(), base.data(), lse.data());
  std::vector<double> d_out(base.size());
  for (size_t i = 0; i < d_out.size(); ++i) d_out[i] = r[i] + base[i];
  const std::vector<double> e = reference::attention_influence(p.shape, p.inputs(), d_out.data());
  int checked = 0;
  for (int64_t h = 0; h < 2; ++h) {
    for (int64_t i = 1; i < p.n; i += 3) {
      for (int64_t j = 0; j <= i; ++j) {
        const double predicted = e[static_cast<size_t>((h * p.n + i) * p.n + j)];
        double score = 0.0;  // A_ij = exp(scale q_i . k_j - lse_i)
        for (int64_t c = 0; c < 8; ++c) score += p.qd[(i * 2 + h) * 8 + c] * p.kd[j * 8 + c];
        const double a = std::exp(p.shape.scale * score - lse[static_cast<size_t>(i * 2 + h)]);
        if (a > 0.01 || std::fabs(predicted) < 0.1 * a) continue;  // large or cancelling terms
        std::vector<double> masked(base.size());
        reference::attention_forward(p.shape, p.inputs(), masked.data(), nullptr, {h, i, j});
        const double change = loss(masked) - loss(base);
        EXPECT_GT(change * predicted, 0.0) << h << " " << i << " " << j;
        EXPECT_NEAR(change, predicted, 0.2 * std::fabs(predicted)) << h << " " << i << " " << j;
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 50);
}

TEST(AttentionInfluence, HistogramMatchesReference) {
  for (const Case& c : kCases) {
    const Problem p = make_problem(c, 700);
    const std::vector<double> e =
        reference::attention_influence(p.shape, p.inputs(), p.d_out_d.data());
    for (int64_t sinks : {int64_t{0}, int64_t{1}, int64_t{4}, c.n + 3}) {
      const KernelRun run = run_kernels(p, sinks, 2);
      const InfluenceHistogram want = reference::influence_histogram(p.shape, c.n, e, sinks);
      const InfluenceHistogram& got = run.influence;
      ASSERT_EQ(got.n_head_kv, c.n_head_kv);
      ASSERT_EQ(got.max_distance, c.n);
      const double scale = std::max(max_abs(want.by_distance), max_abs(want.sink));
      double worst = 0.0;
      for (size_t i = 0; i < want.by_distance.size(); ++i) {
        worst = std::max(worst, std::fabs(got.by_distance[i] - want.by_distance[i]));
        worst = std::max(worst, std::fabs(got.signed_by_distance[i] - want.signed_by_distance[i]));
      }
      for (size_t g = 0; g < want.sink.size(); ++g) {
        worst = std::max(worst, std::fabs(got.sink[g] - want.sink[g]));
        worst = std::max(worst, std::fabs(got.signed_sink[g] - want.signed_sink[g]));
      }
      EXPECT_LE(worst, 2e-5 * scale) << label(c) << " sinks " << sinks;
      EXPECT_GT(std::max(max_abs(want.signed_by_distance), max_abs(want.signed_sink)), 0.0)
          << label(c);
    }
  }
}

TEST(AttentionInfluence, KeepsTheInfluenceOfAKeyHoldingTheWholeRow) {
  // Query 2 puts weight 1 - 1e-17 on key 0 (exactly 1 in F32): masking key 0 moves the row onto
  // keys 1 and 2, g = (0.5, 1, -1) gives E_20 = -(0.5 - 0). An epsilon-guarded 1 - A gives ~0.
  Problem p;
  p.n = 3;
  p.shape = {1, 1, 2, 1.0f};
  p.q = {0, 0, 0, 0, 40, 0};
  p.k = {1, 0, 0, 0, 0, 0};
  p.v = {1, 0, 0, 1, 0, -1};
  p.d_out = {1, 1, 1, 1, 0.5f, 1};
  p.qd = to_double(p.q);
  p.kd = to_double(p.k);
  p.vd = to_double(p.v);
  p.d_out_d = to_double(p.d_out);
  const std::vector<double> e =
      reference::attention_influence(p.shape, p.inputs(), p.d_out_d.data());
  EXPECT_NEAR(e[2 * 3 + 0], -0.5, 1e-12);
  const KernelRun run = run_kernels(p, 0, 1);
  EXPECT_NEAR(run.influence.at(0, 2), 0.5, 1e-6);
  EXPECT_NEAR(run.influence.signed_by_distance[2], -0.5, 1e-6);
}

TEST(AttentionInfluence, TailSumIsTheInfluenceABandMasks) {
  const Problem p = make_problem({4, 2, 16, 90}, 800);
  const int64_t sinks = 4;
  const std::vector<double> e =
      reference::attention_influence(p.shape, p.inputs(), p.d_out_d.data());
  const InfluenceHistogram hist = reference::influence_histogram(p.shape, p.n, e, sinks);
  for (int64_t span : {1, 10, 64, 89, 90}) {
    for (int64_t g = 0; g < 2; ++g) {
      double masked = 0.0, masked_signed = 0.0;  // sums of |E| and E over the entries hidden
      for (int64_t h = 2 * g; h < 2 * g + 2; ++h) {
        for (int64_t i = 0; i < p.n; ++i) {
          for (int64_t j = 0; j <= i; ++j) {
            if (reference::key_visible({sinks, span}, i, j)) continue;
            masked += std::fabs(e[static_cast<size_t>((h * p.n + i) * p.n + j)]);
            masked_signed += e[static_cast<size_t>((h * p.n + i) * p.n + j)];
          }
        }
      }
      EXPECT_NEAR(hist.tail_sum(g, span), masked, 1e-12 * (1.0 + masked)) << span;
      EXPECT_NEAR(hist.signed_tail_sum(g, span), masked_signed, 1e-12 * (1.0 + masked)) << span;
    }
  }
}

TEST(InfluenceHistogram, AddSumsSamplesAndKeepsTheLongerRange) {
  InfluenceHistogram total, a, b;
  a.reset(2, 3);
  b.reset(2, 5);
  for (int64_t d = 0; d < 3; ++d) a.at(1, d) = 1.0;
  for (int64_t d = 0; d < 5; ++d) b.at(1, d) = 2.0;
  a.sink = {0.5, 0.25};
  a.signed_by_distance[1 * 3 + 2] = -1.0;
  b.signed_by_distance[1 * 5 + 2] = 0.25;
  total.add(a);
  total.add(b);
  EXPECT_EQ(total.samples, 2);
  EXPECT_EQ(total.max_distance, 5);
  EXPECT_EQ(total.at(1, 2), 3.0);
  EXPECT_EQ(total.at(1, 4), 2.0);
  EXPECT_EQ(total.at(0, 0), 0.0);
  EXPECT_EQ(total.sink[0], 0.5);
  EXPECT_EQ(total.tail_sum(1, 3), 4.0);
  EXPECT_EQ(total.signed_tail_sum(1, 2), -0.75);
  InfluenceHistogram other;
  other.reset(3, 5);
  EXPECT_THROW(total.add(other), Error);
}

}  // namespace
}  // namespace moa::kernels
