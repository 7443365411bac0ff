// Work below a kernel's threshold runs on one thread (kernels/parallel.h): the thread count
// rule itself, and that the one-thread path and the thread-team path give the same results
// (bit for bit where the split does not change the summation order, within rounding where
// attention's split-K merges partial softmax states).
#include "kernels/parallel.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gguf/quant.h"
#include "kernels/kernels.h"
#include "kernels/random_data.h"
#include "kernels/reference.h"

namespace moa::kernels {
namespace {

using testing::max_abs_diff;
using testing::random_floats;

TEST(ThreadsForWork, GivesEachThreadAtLeastTheMinimumShare) {
  EXPECT_EQ(threads_for_work(2, 0, 100), 1);
  EXPECT_EQ(threads_for_work(2, 199, 100), 1);
  EXPECT_EQ(threads_for_work(2, 200, 100), 2);
  EXPECT_EQ(threads_for_work(2, int64_t{1} << 40, 100), 2);
  EXPECT_EQ(threads_for_work(4, 300, 100), 3);
  EXPECT_EQ(threads_for_work(1, int64_t{1} << 40, 100), 1);
  EXPECT_EQ(threads_for_work(0, int64_t{1} << 40, 100), 1);
  EXPECT_EQ(threads_for_work(3, 5, 0), 3);
}

std::vector<float> run_attention(const AttentionShape& shape, int64_t n_keys, int n_threads) {
  const int64_t n = shape.n_head_kv * n_keys * shape.head_dim;
  const std::vector<float> k = random_floats(n, 31, 2.0f), v = random_floats(n, 32);
  const std::vector<float> q = random_floats(shape.n_head * shape.head_dim, 33, 2.0f);
  const KvView kv{KvType::kF32, k.data(), v.data(), n_keys * shape.head_dim, n_keys};
  std::vector<float> out(q.size());
  attention(shape, q.data(), 1, n_keys - 1, kv, {}, out.data(), n_threads);
  return out;
}

int64_t decode_macs(const AttentionShape& shape, int64_t n_keys) {
  const int64_t tiles = (n_keys + 63) / 64;
  return 2 * tiles * 64 * shape.n_head * shape.head_dim;
}

TEST(ParallelThreshold, SmallDecodeAttentionOnTwoThreadsIsTheOneThreadResult) {
  // 8 key tiles per KV head: with a team the planner would split them (split-K) and merge
  // partial states in another order; below the threshold two threads must not form a team.
  const AttentionShape shape{8, 2, 16, 0.25f};
  const int64_t n_keys = 500;
  ASSERT_LT(decode_macs(shape, n_keys), 2 * kMinAttentionMacsPerThread);
  EXPECT_EQ(run_attention(shape, n_keys, 2), run_attention(shape, n_keys, 1));
}

TEST(ParallelThreshold, LargeDecodeAttentionOnTwoThreadsMatchesOneThread) {
  const AttentionShape shape{8, 2, 64, 0.125f};
  const int64_t n_keys = 4000;
  ASSERT_GE(decode_macs(shape, n_keys), 2 * kMinAttentionMacsPerThread);
  EXPECT_LE(max_abs_diff(run_attention(shape, n_keys, 2), run_attention(shape, n_keys, 1)), 1e-5);
}

// Rows are independent in matvec and GEMM panels, so any thread count gives the same bits.
TEST(ParallelThreshold, MatvecAndMatmulGiveTheSameBitsOnEitherSideOfTheThreshold) {
  for (int64_t rows : {64, 520}) {  // 64 x 256 is below the matvec share, 520 x 256 above
    const int64_t cols = 256;
    const std::vector<float> values = random_floats(rows * cols, 41);
    const size_t row_bytes = gguf::row_bytes(gguf::TensorType::kQ8_0, cols);
    std::vector<uint8_t> bytes(row_bytes * static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      gguf::quantize_row(gguf::TensorType::kQ8_0, values.data() + r * cols,
                         bytes.data() + r * row_bytes, cols);
    }
    const WeightMatrix w{gguf::TensorType::kQ8_0, bytes.data(), rows, cols};
    for (int64_t tokens : {1, 3, 16}) {
      const std::vector<float> x = random_floats(tokens * cols, 42);
      std::vector<float> one(static_cast<size_t>(tokens * rows)), two(one.size());
      matmul(w, x.data(), tokens, one.data(), 1);
      matmul(w, x.data(), tokens, two.data(), 2);
      EXPECT_EQ(one, two) << rows << " rows, " << tokens << " tokens";
    }
  }
}

}  // namespace
}  // namespace moa::kernels
