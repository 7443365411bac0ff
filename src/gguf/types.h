// GGUF value and tensor type codes, as numbered by the GGUF specification (ggml.h).
#pragma once

#include <cstdint>
#include <string_view>

namespace moa::gguf {

enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// Returns nullptr for codes outside the specification.
const char* value_type_name(uint32_t code);

// Tensor element types. Only the ones moa can dequantize are listed by name; other codes from
// ggml are recognised by tensor_type_name() so errors can name them.
enum class TensorType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kBF16 = 30,
};

// ggml's name for a tensor type code ("F32", "Q4_K", ...); nullptr for codes ggml does not define.
const char* tensor_type_name(uint32_t code);

}  // namespace moa::gguf
