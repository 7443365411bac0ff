// Weight side of the int8 prefill GEMM (kernels/gemm_int8.h): unpacks each stored block of a
// weight row to unsigned bytes and float scales, and interleaves 16 rows so that 4 consecutive
// values of each row share one 32-bit lane. Runs once per panel per matmul, i.e. once for every
// token of the batch, so it is plain code the compiler vectorizes; the micro-kernels do the work.
#include <cstring>

#include "gguf/k_quant_scales.h"
#include "gguf/quant.h"
#include "kernels/gemm_int8.h"
#include "kernels/half.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

using gguf::TensorType;

// One super-block of one row, unpacked.
struct Unpacked {
  alignas(64) uint8_t q[gguf::kQK_K];
  float scales[16];
  int16_t mins[8];
  float dmin = 0.0f;
};

void unpack(const gguf::BlockQ8_0& b, Unpacked& u) {
  // Signed byte w + 128 as unsigned: flip the sign bit.
  for (int i = 0; i < 32; ++i) u.q[i] = static_cast<uint8_t>(b.qs[i]) ^ 0x80u;
  u.scales[0] = half_to_float(b.d);
}

void unpack(const gguf::BlockQ4_0& b, Unpacked& u) {
  for (int i = 0; i < 16; ++i) {
    u.q[i] = b.qs[i] & 0x0F;
    u.q[i + 16] = b.qs[i] >> 4;
  }
  u.scales[0] = half_to_float(b.d);
}

void unpack(const gguf::BlockQ5_0& b, Unpacked& u) {
  uint32_t qh;
  std::memcpy(&qh, b.qh, sizeof qh);
  for (int i = 0; i < 16; ++i) {
    u.q[i] = static_cast<uint8_t>((b.qs[i] & 0x0F) | (((qh >> i) & 1u) << 4));
    u.q[i + 16] = static_cast<uint8_t>((b.qs[i] >> 4) | (((qh >> (i + 16)) & 1u) << 4));
  }
  u.scales[0] = half_to_float(b.d);
}

// Q4_K and Q5_K: sub-blocks 2p and 2p+1 are the low and high nibbles of qs[32p .. 32p+31]; Q5_K's
// qh[l] bit s adds 16 to value l of sub-block s.
template <class Block>
void unpack_k_nibbles(const Block& b, const uint8_t* qh, Unpacked& u) {
  const float d = half_to_float(b.d);
  for (int p = 0; p < 4; ++p) {
    const uint8_t* qs = b.qs + 32 * p;
    uint8_t* lo = u.q + 64 * p;
    uint8_t* hi = lo + 32;
    for (int l = 0; l < 32; ++l) {
      lo[l] = qs[l] & 0x0F;
      hi[l] = qs[l] >> 4;
    }
    if (qh != nullptr) {
      for (int l = 0; l < 32; ++l) {
        lo[l] = static_cast<uint8_t>(lo[l] | (((qh[l] >> (2 * p)) & 1) << 4));
        hi[l] = static_cast<uint8_t>(hi[l] | (((qh[l] >> (2 * p + 1)) & 1) << 4));
      }
    }
  }
  for (int j = 0; j < 8; ++j) {
    int scale = 0, min = 0;
    gguf::q4_k_scale_min(b.scales, j, &scale, &min);
    u.scales[j] = d * static_cast<float>(scale);
    u.mins[j] = static_cast<int16_t>(min);
  }
  u.dmin = half_to_float(b.dmin);
}

void unpack(const gguf::BlockQ4_K& b, Unpacked& u) { unpack_k_nibbles(b, nullptr, u); }
void unpack(const gguf::BlockQ5_K& b, Unpacked& u) { unpack_k_nibbles(b, b.qh, u); }

// Q6_K: value l + 32k of half h takes the low nibble of ql[64h + l + 32(k & 1)] (high nibble for
// k >= 2) and bits 2k..2k+1 of qh[32h + l]; stored code 0..63 is w + 32.
void unpack(const gguf::BlockQ6_K& b, Unpacked& u) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = b.ql + 64 * h;
    const uint8_t* qh = b.qh + 32 * h;
    uint8_t* q = u.q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      q[l] = static_cast<uint8_t>((ql[l] & 0x0F) | ((qh[l] & 3) << 4));
      q[l + 32] = static_cast<uint8_t>((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4));
      q[l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
      q[l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
    }
  }
  const float d = half_to_float(b.d);
  for (int j = 0; j < 16; ++j) u.scales[j] = d * static_cast<float>(b.scales[j]);
}

// Writes row `lane`'s unpacked super-block into a group's super-block at `dst`.
void scatter(const Unpacked& u, const Int8GemmFormat& f, int64_t lane, uint8_t* dst) {
  for (int64_t k = 0; k < f.super_k / 4; ++k)
    std::memcpy(dst + k * 4 * kGemmLanes + 4 * lane, u.q + 4 * k, 4);
  auto* scales = reinterpret_cast<float*>(dst + f.super_k * kGemmLanes);
  for (int64_t j = 0; j < f.subs; ++j) scales[j * kGemmLanes + lane] = u.scales[j];
  if (!f.mins) return;
  auto* mins = reinterpret_cast<int16_t*>(scales + f.subs * kGemmLanes);
  for (int64_t p = 0; p < 4; ++p) {
    mins[(p * kGemmLanes + lane) * 2] = u.mins[2 * p];
    mins[(p * kGemmLanes + lane) * 2 + 1] = u.mins[2 * p + 1];
  }
  reinterpret_cast<float*>(mins + 4 * kGemmLanes * 2)[lane] = u.dmin;
}

template <class Block>
void pack_groups(const WeightMatrix& w, const Int8GemmFormat& f, int64_t r0, int64_t n_groups,
                 uint8_t* out) {
  const int64_t n_super = w.cols / f.super_k;
  const size_t row_bytes = gguf::row_bytes(w.type, w.cols);
  const int64_t group_bytes = n_super * f.group_bytes;
  Unpacked u;
  for (int64_t g = 0; g < n_groups; ++g) {
    uint8_t* group = out + g * group_bytes;
    const int64_t first = r0 + g * kGemmLanes;
    if (first + kGemmLanes > w.rows) std::memset(group, 0, static_cast<size_t>(group_bytes));
    for (int64_t lane = 0; lane < kGemmLanes && first + lane < w.rows; ++lane) {
      const auto* blocks = reinterpret_cast<const Block*>(
          static_cast<const uint8_t*>(w.data) + static_cast<size_t>(first + lane) * row_bytes);
      for (int64_t s = 0; s < n_super; ++s) {
        unpack(blocks[s], u);
        scatter(u, f, lane, group + s * f.group_bytes);
      }
    }
  }
}

}  // namespace

bool int8_gemm_supports(TensorType type) {
  switch (type) {
    case TensorType::kQ8_0:
    case TensorType::kQ5_0:
    case TensorType::kQ4_0:
    case TensorType::kQ4_K:
    case TensorType::kQ5_K:
    case TensorType::kQ6_K:
      return true;
    default:
      return false;
  }
}

Int8GemmFormat int8_gemm_format(TensorType type) {
  Int8GemmFormat f;
  switch (type) {
    case TensorType::kQ8_0:
    case TensorType::kQ5_0:
    case TensorType::kQ4_0:
      f = {32, 32, 1, false, 8, 0};
      if (type == TensorType::kQ8_0) f.offset = 128;
      if (type == TensorType::kQ5_0) f.offset = 16;
      break;
    case TensorType::kQ4_K:
    case TensorType::kQ5_K:
      f = {gguf::kQK_K, 32, 8, true, 0, 0};
      break;
    case TensorType::kQ6_K:
      f = {gguf::kQK_K, 16, 16, false, 32, 0};
      break;
    default:
      fail("gemm_int8: weight type {} is not a block-quantized type it multiplies",
           gguf::tensor_type_name(static_cast<uint32_t>(type)));
  }
  f.group_bytes = f.super_k * kGemmLanes + f.subs * kGemmLanes * 4 +
                  (f.mins ? 4 * kGemmLanes * 4 + kGemmLanes * 4 : 0);
  return f;
}

void pack_int8_gemm_groups(const WeightMatrix& w, int64_t r0, int64_t n_groups, uint8_t* out) {
  const Int8GemmFormat f = int8_gemm_format(w.type);
  switch (w.type) {
    case TensorType::kQ8_0:
      return pack_groups<gguf::BlockQ8_0>(w, f, r0, n_groups, out);
    case TensorType::kQ5_0:
      return pack_groups<gguf::BlockQ5_0>(w, f, r0, n_groups, out);
    case TensorType::kQ4_0:
      return pack_groups<gguf::BlockQ4_0>(w, f, r0, n_groups, out);
    case TensorType::kQ4_K:
      return pack_groups<gguf::BlockQ4_K>(w, f, r0, n_groups, out);
    case TensorType::kQ5_K:
      return pack_groups<gguf::BlockQ5_K>(w, f, r0, n_groups, out);
    default:
      return pack_groups<gguf::BlockQ6_K>(w, f, r0, n_groups, out);
  }
}

}  // namespace moa::kernels
