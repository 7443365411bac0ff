// Q8_0 storage of cached keys and values: one F16 scale per block of 32 values of a K/V row (the
// whole row when head_dim is 8 or 16), int8 values. Rows are quantized once when stored (ggml's
// reference quantizer in gguf/quant, so the bytes match llama.cpp's `-ctk q8_0` blocks) and
// widened to F32 when an attention tile loads them; byte offsets of rows come from kv_bytes.
#include <algorithm>
#include <cstring>

#include "gguf/quant.h"
#include "hwy/highway.h"
#include "kernels/half.h"
#include "kernels/kernels.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::CappedTag<float, 16>;
using DI8 = hn::Rebind<int8_t, DF>;
using DI32 = hn::Rebind<int32_t, DF>;
constexpr int64_t kBlock = gguf::kQK8_0;

// Bytes of one block of `block` values: the F16 scale, then the values.
size_t block_bytes(int64_t block) { return sizeof(uint16_t) + static_cast<size_t>(block); }

}  // namespace

int64_t kv_block_elements(KvType type, int64_t head_dim) {
  if (type != KvType::kQ8_0) return 1;
  return head_dim % kBlock == 0 ? kBlock : head_dim;
}

size_t kv_bytes(KvType type, int64_t n, int64_t head_dim) {
  switch (type) {
    case KvType::kF32:
      return static_cast<size_t>(n) * 4;
    case KvType::kF16:
      return static_cast<size_t>(n) * 2;
    case KvType::kQ8_0: {
      const int64_t block = kv_block_elements(type, head_dim);
      return static_cast<size_t>(n / block) * block_bytes(block);
    }
  }
  return 0;
}

void check_kv_head_dim(KvType type, int64_t head_dim, const char* what) {
  if (type != KvType::kQ8_0 || head_dim <= 0) return;
  if (head_dim % kBlock != 0 && kBlock % head_dim != 0) {
    fail("{}: a q8_0 KV cache needs head_dim a multiple or a divisor of 32 (got {}); use f16", what,
         head_dim);
  }
}

void quantize_kv_row_q8_0(const float* src, int64_t n, void* dst) {
  check_kv_head_dim(KvType::kQ8_0, n, "quantize_kv_row_q8_0");
  if (n % kBlock == 0) {
    gguf::quantize_row(gguf::TensorType::kQ8_0, src, dst, n);
    return;
  }
  // A short row is one block: zero padding leaves max|x| and so the scale unchanged.
  float padded[kBlock] = {};
  std::copy_n(src, n, padded);
  gguf::BlockQ8_0 block;
  gguf::quantize_row(gguf::TensorType::kQ8_0, padded, &block, kBlock);
  auto* out = static_cast<uint8_t*>(dst);
  std::memcpy(out, &block.d, sizeof(block.d));
  std::memcpy(out + sizeof(block.d), block.qs, static_cast<size_t>(n));
}

void dequantize_kv_row_q8_0(const void* src, int64_t n, float* dst) {
  const int64_t block = kv_block_elements(KvType::kQ8_0, n);
  const DF d;
  const auto lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto* bytes = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / block; ++b, bytes += block_bytes(block)) {
    uint16_t scale_bits;
    std::memcpy(&scale_bits, bytes, sizeof(scale_bits));
    const float scale = half_to_float(scale_bits);
    const auto* qs = reinterpret_cast<const int8_t*>(bytes + sizeof(scale_bits));
    float* out = dst + b * block;
    int64_t i = 0;
    if (block % lanes == 0) {
      const auto vscale = hn::Set(d, scale);
      for (; i < block; i += lanes) {
        const auto q = hn::PromoteTo(DI32(), hn::LoadU(DI8(), qs + i));
        hn::StoreU(hn::Mul(hn::ConvertTo(d, q), vscale), d, out + i);
      }
    }
    for (; i < block; ++i) out[i] = scale * static_cast<float>(qs[i]);
  }
}

}  // namespace moa::kernels
