// A GGUF metadata value: a scalar, a string, or an array of values (arrays may nest).
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "gguf/types.h"

namespace moa::gguf {

struct Value {
  // Integers of every width are kept as uint64_t (unsigned types) or int64_t (signed), floats as
  // double; `type` remembers the original width so the writer can reproduce it.
  using Array = std::vector<Value>;
  ValueType type = ValueType::kUint8;
  ValueType element_type = ValueType::kUint8;  // meaningful when type == kArray
  std::variant<uint64_t, int64_t, double, bool, std::string, Array> data = uint64_t{0};

  static Value uint(ValueType type, uint64_t v) { return {type, ValueType::kUint8, v}; }
  static Value sint(ValueType type, int64_t v) { return {type, ValueType::kUint8, v}; }
  static Value u32(uint32_t v) { return uint(ValueType::kUint32, v); }
  static Value i32(int32_t v) { return sint(ValueType::kInt32, v); }
  static Value u64(uint64_t v) { return uint(ValueType::kUint64, v); }
  static Value f32(float v) {
    return {ValueType::kFloat32, ValueType::kUint8, static_cast<double>(v)};
  }
  static Value f64(double v) { return {ValueType::kFloat64, ValueType::kUint8, v}; }
  static Value boolean(bool v) { return {ValueType::kBool, ValueType::kUint8, v}; }
  static Value string(std::string v) {
    return {ValueType::kString, ValueType::kUint8, std::move(v)};
  }
  static Value array(ValueType element_type, Array items) {
    return {ValueType::kArray, element_type, std::move(items)};
  }
  static Value string_array(const std::vector<std::string>& items);
  static Value f32_array(const std::vector<float>& items);
  static Value i32_array(const std::vector<int32_t>& items);

  bool is_integer() const {
    return std::holds_alternative<uint64_t>(data) || std::holds_alternative<int64_t>(data);
  }
  bool is_number() const { return is_integer() || std::holds_alternative<double>(data); }
  bool is_array() const { return type == ValueType::kArray; }
  const Array& items() const { return std::get<Array>(data); }
};

}  // namespace moa::gguf
