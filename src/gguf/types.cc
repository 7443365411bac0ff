// Names and block geometry of every GGUF value type and ggml tensor type. The tensor table
// covers all codes ggml has defined (including ones moa cannot dequantize and the interleaved
// Q4_0_x_x / IQ4_NL_x_x codes that ggml later retired but older files may still carry) so that
// the reader can validate tensor sizes and errors can name the type.
#include "gguf/types.h"

#include <array>

#include "gguf/quant.h"

namespace moa::gguf {
namespace {

struct TensorTypeTraits {
  const char* name = nullptr;  // nullptr: code not defined by ggml
  int64_t block_elements = 0;
  size_t block_bytes = 0;
};

// Indexed by type code; byte sizes are the packed block structs of ggml-common.h.
constexpr auto kTensorTypes = [] {
  std::array<TensorTypeTraits, 42> t{};
  t[0] = {"F32", 1, 4};
  t[1] = {"F16", 1, 2};
  t[2] = {"Q4_0", 32, 18};
  t[3] = {"Q4_1", 32, 20};
  t[6] = {"Q5_0", 32, 22};
  t[7] = {"Q5_1", 32, 24};
  t[8] = {"Q8_0", 32, 34};
  t[9] = {"Q8_1", 32, 36};
  t[10] = {"Q2_K", 256, 84};
  t[11] = {"Q3_K", 256, 110};
  t[12] = {"Q4_K", 256, 144};
  t[13] = {"Q5_K", 256, 176};
  t[14] = {"Q6_K", 256, 210};
  t[15] = {"Q8_K", 256, 292};
  t[16] = {"IQ2_XXS", 256, 66};
  t[17] = {"IQ2_XS", 256, 74};
  t[18] = {"IQ3_XXS", 256, 98};
  t[19] = {"IQ1_S", 256, 50};
  t[20] = {"IQ4_NL", 32, 18};
  t[21] = {"IQ3_S", 256, 110};
  t[22] = {"IQ2_S", 256, 82};
  t[23] = {"IQ4_XS", 256, 136};
  t[24] = {"I8", 1, 1};
  t[25] = {"I16", 1, 2};
  t[26] = {"I32", 1, 4};
  t[27] = {"I64", 1, 8};
  t[28] = {"F64", 1, 8};
  t[29] = {"IQ1_M", 256, 56};
  t[30] = {"BF16", 1, 2};
  t[31] = {"Q4_0_4_4", 32, 18};
  t[32] = {"Q4_0_4_8", 32, 18};
  t[33] = {"Q4_0_8_8", 32, 18};
  t[34] = {"TQ1_0", 256, 54};
  t[35] = {"TQ2_0", 256, 66};
  t[36] = {"IQ4_NL_4_4", 32, 18};
  t[37] = {"IQ4_NL_4_8", 32, 18};
  t[38] = {"IQ4_NL_8_8", 32, 18};
  t[39] = {"MXFP4", 32, 17};
  t[40] = {"NVFP4", 64, 36};
  t[41] = {"Q1_0", 128, 18};
  return t;
}();

constexpr std::array<const char*, 13> kValueTypeNames = {
    "uint8", "int8",   "uint16", "int16",  "uint32", "int32",   "float32",
    "bool",  "string", "array",  "uint64", "int64",  "float64",
};

TensorTypeTraits traits_of(uint32_t code) {
  return code < kTensorTypes.size() ? kTensorTypes[code] : TensorTypeTraits{};
}

}  // namespace

const char* value_type_name(uint32_t code) {
  return code < kValueTypeNames.size() ? kValueTypeNames[code] : nullptr;
}

const char* tensor_type_name(uint32_t code) { return traits_of(code).name; }

int64_t type_block_elements(TensorType type) {
  return traits_of(static_cast<uint32_t>(type)).block_elements;
}

size_t type_block_bytes(TensorType type) {
  return traits_of(static_cast<uint32_t>(type)).block_bytes;
}

}  // namespace moa::gguf
