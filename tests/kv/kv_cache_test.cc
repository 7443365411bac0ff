// The dense KV cache: layout as attention reads it, F16 rounding, per-sequence lengths and the
// context checks.
#include "kv/kv_cache.h"

#include <gtest/gtest.h>

#include <vector>

#include "gguf/quant.h"
#include "util/error.h"

namespace moa {
namespace {

KvShape small_shape(kernels::KvType type, int n_seq = 2) {
  KvShape shape;
  shape.n_layer = 2;
  shape.n_head_kv = 3;
  shape.head_dim = 4;
  shape.n_ctx = 5;
  shape.n_seq = n_seq;
  shape.type = type;
  return shape;
}

// k[t][h][d] = 1000 * t + 10 * h + d + offset, as a projection would produce it.
std::vector<float> projection(int64_t n_tokens, float offset) {
  std::vector<float> k;
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t h = 0; h < 3; ++h)
      for (int64_t d = 0; d < 4; ++d) k.push_back(1000.0f * t + 10.0f * h + d + offset);
  return k;
}

TEST(KvCache, StoresHeadMajorAsTheViewDescribes) {
  KvCache cache(small_shape(kernels::KvType::kF32));
  const std::vector<float> k = projection(2, 0.0f), v = projection(2, 0.5f);
  cache.store(1, 1, 2, 2, k.data(), v.data());
  const kernels::KvView view = cache.view(1, 1, 4);
  EXPECT_EQ(view.n_keys, 4);
  EXPECT_EQ(view.head_stride, 5 * 4);
  const auto* keys = static_cast<const float*>(view.k);
  const auto* values = static_cast<const float*>(view.v);
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t h = 0; h < 3; ++h)
      for (int64_t d = 0; d < 4; ++d) {
        const int64_t at = h * view.head_stride + (2 + t) * 4 + d;
        EXPECT_EQ(keys[at], 1000.0f * t + 10.0f * h + d);
        EXPECT_EQ(values[at], 1000.0f * t + 10.0f * h + d + 0.5f);
      }
  // Other sequences and layers are untouched.
  EXPECT_EQ(static_cast<const float*>(cache.view(1, 0, 4).k)[2 * 4], 0.0f);
  EXPECT_EQ(static_cast<const float*>(cache.view(0, 1, 4).k)[2 * 4], 0.0f);
}

TEST(KvCache, F16StorageRoundsToHalfPrecision) {
  KvCache cache(small_shape(kernels::KvType::kF16));
  std::vector<float> k = projection(1, 0.0f);
  k[5] = 0.1f;
  cache.store(0, 0, 0, 1, k.data(), k.data());
  const kernels::KvView view = cache.view(0, 0, 1);
  EXPECT_EQ(view.type, kernels::KvType::kF16);
  const auto* keys = static_cast<const uint16_t*>(view.k);
  // element 5 is head 1, dim 1
  EXPECT_EQ(keys[1 * view.head_stride + 1], gguf::fp32_to_fp16(0.1f));
  // Keys and values, plus the lengths of its sequences.
  EXPECT_EQ(cache.bytes(), 2u * 2 * 2 * 3 * 5 * 4 * 2 + 2 * sizeof(int64_t));
  EXPECT_EQ(cache.bytes(), KvCache::bytes_for(cache.shape()));
}

TEST(KvCache, BytesCountThePlanMasks) {
  KvCache cache(small_shape(kernels::KvType::kF32));
  const uint64_t bare = cache.bytes();
  cache.use_plan(uniform_plan({"llama", 2, 6, 3, ""}, 2, 1), 5);
  EXPECT_GE(cache.bytes(), bare + 2 * 3 * sizeof(kernels::BandMask));
}

TEST(KvCache, TracksLengthsPerSequence) {
  KvCache cache(small_shape(kernels::KvType::kF32));
  cache.set_length(0, 3);
  EXPECT_EQ(cache.length(0), 3);
  EXPECT_EQ(cache.length(1), 0);
  cache.check_room(0, 2);
  EXPECT_THROW(cache.check_room(0, 3), Error);
  cache.set_length(0, 0);
  EXPECT_EQ(cache.length(0), 0);
}

TEST(KvCache, RejectsWritesPastTheContextAndUnknownSequences) {
  KvCache cache(small_shape(kernels::KvType::kF32));
  const std::vector<float> k = projection(2, 0.0f);
  try {
    cache.store(0, 0, 4, 2, k.data(), k.data());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("context is full"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cache.length(2), Error);
  EXPECT_THROW(cache.view(2, 0, 1), Error);
  EXPECT_THROW(cache.view(0, 0, 6), Error);
  EXPECT_THROW(cache.set_length(0, 6), Error);
}

TEST(KvCache, RejectsEmptyShapes) {
  KvShape shape = small_shape(kernels::KvType::kF32);
  shape.n_ctx = 0;
  EXPECT_THROW(KvCache{shape}, Error);
  shape = small_shape(kernels::KvType::kF32, 0);
  EXPECT_THROW(KvCache{shape}, Error);
}

TEST(KvCache, ParsesTypeNames) {
  EXPECT_EQ(parse_kv_type("f16"), kernels::KvType::kF16);
  EXPECT_EQ(parse_kv_type("F32"), kernels::KvType::kF32);
  EXPECT_EQ(parse_kv_type("Q8_0"), kernels::KvType::kQ8_0);
  EXPECT_STREQ(kv_type_name(kernels::KvType::kQ8_0), "q8_0");
  EXPECT_THROW(parse_kv_type("q4_0"), Error);
}

}  // namespace
}  // namespace moa
