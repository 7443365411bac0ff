// BF16-product attention (attention_bf16.cc: decode-shaped tiles over an F16 cache) against the
// double-precision reference, with the tolerance docs/dense-engine.md states, and against the
// F32 path: where the CPU has AVX512-BF16 the two must differ (the BF16 path really ran) yet
// stay within that tolerance; F32 caches and wide blocks keep exact F32 products.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "gguf/quant.h"
#include "kernels/attention_tile.h"
#include "kernels/kernels.h"
#include "kernels/random_data.h"
#include "kernels/reference.h"

namespace moa::kernels {
namespace {

using testing::max_abs_diff;
using testing::random_floats;

// Max |difference| allowed between BF16-product attention and the double reference for
// queries and keys in [-2, 2] and values in [-1, 1] (measured worst 2.0e-3).
constexpr double kBf16Tolerance = 5e-3;
constexpr double kF32Tolerance = 2e-5;  // the F32 path's bound in attention_test.cc

struct Problem {
  int64_t group, n_query, head_dim, n_keys;
  std::vector<BandMask> masks;  // one per KV head (2), or empty
  KvType type = KvType::kF16;
};

struct Outputs {
  std::vector<float> bf16, f32, want;
};

Outputs run(const Problem& p, int threads) {
  const int64_t n_head_kv = 2, n_head = 2 * p.group;
  const AttentionShape exact{n_head, n_head_kv, p.head_dim,
                             1.0f / std::sqrt(static_cast<float>(p.head_dim))};
  AttentionShape low = exact;
  low.bf16_products = true;
  const int64_t capacity = p.n_keys + 5;  // spare slots hold NaN: never read
  const int64_t n = n_head_kv * capacity * p.head_dim;
  std::vector<float> k = random_floats(n, 31, 2.0f), v = random_floats(n, 32);
  std::vector<uint16_t> k16, v16;
  for (int64_t h = 0; h < n_head_kv; ++h) {
    for (int64_t i = p.n_keys * p.head_dim; i < capacity * p.head_dim; ++i) {
      k[static_cast<size_t>(h * capacity * p.head_dim + i)] = NAN;
      v[static_cast<size_t>(h * capacity * p.head_dim + i)] = NAN;
    }
  }
  for (float f : k) k16.push_back(gguf::fp32_to_fp16(f));
  for (float f : v) v16.push_back(gguf::fp32_to_fp16(f));
  KvView view{p.type, k.data(), v.data(), capacity * p.head_dim, p.n_keys};
  if (p.type == KvType::kF16) {
    view.k = k16.data();
    view.v = v16.data();
  }
  const auto q = random_floats(p.n_query * n_head * p.head_dim, 33, 2.0f);
  const int64_t q_pos0 = p.n_keys - p.n_query;
  Outputs out;
  out.bf16.assign(q.size(), 0.0f);
  out.f32.assign(q.size(), 0.0f);
  out.want.assign(q.size(), 0.0f);
  attention(low, q.data(), p.n_query, q_pos0, view, p.masks, out.bf16.data(), threads);
  attention(exact, q.data(), p.n_query, q_pos0, view, p.masks, out.f32.data(), threads);
  reference::attention(exact, q.data(), p.n_query, q_pos0, view, p.masks, out.want.data());
  return out;
}

std::vector<BandMask> band(int64_t sinks, int64_t span) {
  return std::vector<BandMask>(2, BandMask{sinks, span});
}

// GQA groups of 4..16 rows (8- and 16-lane tiles, 4- and 8-row value passes), head sizes with
// one or several 16-value slices, odd key counts (an unpaired last key), masks, 1 and 2 threads.
TEST(AttentionBf16, DecodeTilesMatchReferenceWithinStatedTolerance) {
  const Problem problems[] = {
      {4, 1, 64, 1001, {}},           {8, 1, 64, 1000, {}}, {8, 1, 128, 777, {}},
      {14, 1, 16, 301, {}},           {6, 2, 48, 515, {}},  {8, 1, 64, 2000, band(4, 300)},
      {12, 1, 80, 1200, band(64, 70)}};
  for (const Problem& p : problems) {
    for (int threads : {1, 2}) {
      const Outputs out = run(p, threads);
      EXPECT_LE(max_abs_diff(out.bf16, out.want), kBf16Tolerance)
          << "group " << p.group << " dim " << p.head_dim << " keys " << p.n_keys;
      EXPECT_LE(max_abs_diff(out.f32, out.want), kF32Tolerance);
      if (bf16_attention_available()) {
        EXPECT_GT(max_abs_diff(out.bf16, out.f32), 0.0)
            << "the BF16 path did not run: group " << p.group << " dim " << p.head_dim;
      }
    }
  }
}

// An F32 cache, blocks of fewer than 4 rows (multi-head decode: F32 row dots) and blocks too
// wide for lanes (prefill) keep exact F32 products even when BF16 is allowed.
TEST(AttentionBf16, F32CachesAndWideBlocksStayExact) {
  Problem f32_cache{8, 1, 64, 900, {}, KvType::kF32};
  Outputs out = run(f32_cache, 2);
  EXPECT_EQ(max_abs_diff(out.bf16, out.f32), 0.0);
  for (int64_t group : {1, 3}) {
    Problem few_rows{group, 1, 64, 700, band(4, 300)};
    out = run(few_rows, 2);
    EXPECT_EQ(max_abs_diff(out.bf16, out.f32), 0.0) << "group " << group;
  }
  Problem prefill{8, 40, 64, 300, {}};
  out = run(prefill, 2);
  EXPECT_LE(max_abs_diff(out.bf16, out.want), kF32Tolerance);
}

}  // namespace
}  // namespace moa::kernels
