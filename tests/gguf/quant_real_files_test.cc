// Number formats on real files: stories260K's F16/Q8_0/Q4_0 copies (made by gguf-py) and
// tiny-llama-k's Q5_0 copy (made by llama-quantize, ggml's reference quantizer) against their F32
// originals: error bounds, and our quantizers' bytes against the files'.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "gguf/quant.h"
#include "support/assets.h"

namespace moa::gguf {
namespace {

// ---- the real files: stories260K quantized by gguf-py, compared with the F32 original ----

struct RowPair {
  std::vector<float> original;  // F32 values from the original file
  const uint8_t* stored;        // the same row in the derived file
};

// Calls `check` with every row of every tensor of `type` in the derived file; returns the count
// of such tensors.
int for_each_row(const GgufFile& original, const GgufFile& derived, TensorType type,
                 const std::function<void(const TensorInfo&, const RowPair&)>& check) {
  int tensors = 0;
  for (const TensorInfo& t : derived.tensors()) {
    if (t.type != type) continue;
    ++tensors;
    const TensorInfo& f32 = original.tensor(t.name);
    EXPECT_EQ(f32.type, TensorType::kF32) << t.name;
    EXPECT_EQ(f32.ne, t.ne) << t.name;
    const int64_t n = t.row_length();
    const size_t stored_row = row_bytes(type, n);
    EXPECT_EQ(stored_row * static_cast<size_t>(t.n_rows()), t.n_bytes) << t.name;
    RowPair row{std::vector<float>(static_cast<size_t>(n)), nullptr};
    for (int64_t r = 0; r < t.n_rows(); ++r) {
      dequantize_row(TensorType::kF32, f32.data + r * n * 4, row.original.data(), n);
      row.stored = t.data + r * stored_row;
      check(t, row);
    }
  }
  return tensors;
}

TEST(RealFiles, F16CopyHoldsTheNearestHalfOfEveryWeight) {
  MOA_REQUIRE_ASSET(original_path, "models/stories260K.gguf");
  MOA_REQUIRE_ASSET(derived_path, "models/stories260K-F16.gguf");
  const GgufFile original = GgufFile::open(original_path), derived = GgufFile::open(derived_path);
  int64_t mismatches = 0;
  const int tensors =
      for_each_row(original, derived, TensorType::kF16, [&](const TensorInfo&, const RowPair& row) {
        const auto n = static_cast<int64_t>(row.original.size());
        std::vector<float> y(row.original.size());
        dequantize_row(TensorType::kF16, row.stored, y.data(), n);
        for (size_t i = 0; i < y.size(); ++i) {
          uint16_t stored;
          std::memcpy(&stored, row.stored + 2 * i, 2);
          mismatches += stored != fp32_to_fp16(row.original[i]);  // numpy's astype(float16) is RNE
          const float x = row.original[i];
          mismatches += std::fabs(y[i] - x) > std::ldexp(std::fabs(x), -11) + 0x1p-25f;
        }
      });
  EXPECT_EQ(tensors, 37);
  EXPECT_EQ(mismatches, 0);
}

struct BlockCheck {
  int tensors = 0;
  int64_t outside_bound = 0;    // values farther from the original than the bound allows
  int64_t differing_bytes = 0;  // bytes where our quantizer disagrees with the file
};

// Compares a Q8_0/Q4_0 copy with the original: per 32-block error at most `steps` * amax/`levels`
// (plus the fp16 rounding of d over `levels` codes), and our quantizer's bytes against the file's.
BlockCheck check_block_copy(const GgufFile& original, const GgufFile& derived, TensorType type,
                            float levels, float steps) {
  BlockCheck result;
  result.tensors =
      for_each_row(original, derived, type, [&](const TensorInfo&, const RowPair& row) {
        const auto n = static_cast<int64_t>(row.original.size());
        std::vector<float> y(row.original.size());
        dequantize_row(type, row.stored, y.data(), n);
        for (int64_t b = 0; b < n / 32; ++b) {
          const float* x = row.original.data() + b * 32;
          float amax = 0;
          for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
          const float bound = amax / levels * (steps + levels / 2048.0f);
          for (int j = 0; j < 32; ++j)
            result.outside_bound += std::fabs(y[b * 32 + j] - x[j]) > bound;
        }
        std::vector<uint8_t> ours(row_bytes(type, n));
        quantize_row(type, row.original.data(), ours.data(), n);
        for (size_t i = 0; i < ours.size(); ++i) result.differing_bytes += ours[i] != row.stored[i];
      });
  return result;
}

// A block-quantized copy of an F32 original: the error bound per 32-block (`steps` steps of
// amax/`levels`) and how many tensors of `type` it holds. Our quantizer must reproduce its bytes.
struct BlockCopy {
  const char* original;
  const char* derived;
  TensorType type;
  float levels, steps;
  int tensors;
};

const BlockCopy kBlockCopies[] = {
    // gguf-py's Q8_0 is bit-exact with ggml's reference.
    {"models/stories260K.gguf", "models/stories260K-Q8_0.gguf", TensorType::kQ8_0, 127.0f, 0.5f,
     32},
    // A full step: a value of opposite sign to the extreme may be clipped from code 16 to 15.
    // gguf-py computes x * (1/d) + 8.5 in float64, ggml (and we) in float32; no weight of this
    // model lands on a tie where the two differ.
    {"models/stories260K.gguf", "models/stories260K-Q4_0.gguf", TensorType::kQ4_0, 8.0f, 1.0f, 32},
    // llama-quantize without an imatrix runs quantize_row_q5_0_ref; clipping as Q4_0's (32 -> 31).
    {"models/tiny-llama-k-F32.gguf", "models/tiny-llama-k-Q5_0.gguf", TensorType::kQ5_0, 16.0f,
     1.0f, 15},
};

class RealBlockCopy : public ::testing::TestWithParam<BlockCopy> {};

TEST_P(RealBlockCopy, MatchesOurQuantizerAndErrorBound) {
  const BlockCopy& c = GetParam();
  MOA_REQUIRE_ASSET(original_path, c.original);
  MOA_REQUIRE_ASSET(derived_path, c.derived);
  const BlockCheck check = check_block_copy(
      GgufFile::open(original_path), GgufFile::open(derived_path), c.type, c.levels, c.steps);
  EXPECT_EQ(check.tensors, c.tensors);
  EXPECT_EQ(check.outside_bound, 0);
  EXPECT_EQ(check.differing_bytes, 0);
}

INSTANTIATE_TEST_SUITE_P(RealFiles, RealBlockCopy, ::testing::ValuesIn(kBlockCopies),
                         [](const auto& info) {
                           return std::string(
                               tensor_type_name(static_cast<uint32_t>(info.param.type)));
                         });

}  // namespace
}  // namespace moa::gguf
