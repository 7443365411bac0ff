// Typed access to GGUF metadata values; conversion errors name the key and the type found.
#include <cmath>
#include <limits>

#include "gguf/gguf_file.h"
#include "util/error.h"

namespace moa::gguf {
namespace {

std::string type_of(const Value& v) {
  if (v.is_array()) {
    const char* e = value_type_name(static_cast<uint32_t>(v.element_type));
    return fmt::format("ARRAY of {}", e != nullptr ? e : "?");
  }
  const char* name = value_type_name(static_cast<uint32_t>(v.type));
  return name != nullptr ? name : "?";
}

[[noreturn]] void wrong_type(const std::string& file, std::string_view key, const Value& v,
                             const char* expected) {
  fail("{}: metadata '{}': expected {}, got {}", file, key, expected, type_of(v));
}

uint64_t to_uint(const std::string& file, std::string_view key, const Value& v) {
  if (const auto* u = std::get_if<uint64_t>(&v.data)) return *u;
  if (const auto* i = std::get_if<int64_t>(&v.data)) {
    if (*i < 0) fail("{}: metadata '{}': expected a non-negative integer, got {}", file, key, *i);
    return static_cast<uint64_t>(*i);
  }
  wrong_type(file, key, v, "an unsigned integer");
}

int64_t to_int(const std::string& file, std::string_view key, const Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v.data)) return *i;
  if (const auto* u = std::get_if<uint64_t>(&v.data)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail("{}: metadata '{}': integer {} is out of range", file, key, *u);
    }
    return static_cast<int64_t>(*u);
  }
  wrong_type(file, key, v, "an integer");
}

double to_float(const std::string& file, std::string_view key, const Value& v) {
  if (const auto* d = std::get_if<double>(&v.data)) return *d;
  if (v.is_integer()) return static_cast<double>(to_int(file, key, v));
  wrong_type(file, key, v, "a number");
}

const Value::Array& array_of(const std::string& file, std::string_view key, const Value& v) {
  if (!v.is_array()) wrong_type(file, key, v, "an array");
  return v.items();
}

}  // namespace

Value Value::string_array(const std::vector<std::string>& items) {
  Array out;
  out.reserve(items.size());
  for (const std::string& s : items) out.push_back(Value::string(s));
  return array(ValueType::kString, std::move(out));
}

Value Value::f32_array(const std::vector<float>& items) {
  Array out;
  out.reserve(items.size());
  for (float f : items) out.push_back(Value::f32(f));
  return array(ValueType::kFloat32, std::move(out));
}

Value Value::i32_array(const std::vector<int32_t>& items) {
  Array out;
  out.reserve(items.size());
  for (int32_t i : items) out.push_back(Value::i32(i));
  return array(ValueType::kInt32, std::move(out));
}

#define MOA_GGUF_GETTERS(Type, getter, finder, convert)                              \
  Type GgufFile::getter(std::string_view key) const {                                \
    const Value* v = find(key);                                                      \
    if (v == nullptr) fail("{}: required metadata key '{}' is missing", name_, key); \
    return convert(name_, key, *v);                                                  \
  }                                                                                  \
  std::optional<Type> GgufFile::finder(std::string_view key) const {                 \
    const Value* v = find(key);                                                      \
    if (v == nullptr) return std::nullopt;                                           \
    return convert(name_, key, *v);                                                  \
  }

namespace {
bool to_bool(const std::string& file, std::string_view key, const Value& v) {
  if (const auto* b = std::get_if<bool>(&v.data)) return *b;
  wrong_type(file, key, v, "a bool");
}
std::string to_string(const std::string& file, std::string_view key, const Value& v) {
  if (const auto* s = std::get_if<std::string>(&v.data)) return *s;
  wrong_type(file, key, v, "a string");
}
}  // namespace

MOA_GGUF_GETTERS(uint64_t, get_uint, find_uint, to_uint)
MOA_GGUF_GETTERS(int64_t, get_int, find_int, to_int)
MOA_GGUF_GETTERS(double, get_float, find_float, to_float)
MOA_GGUF_GETTERS(bool, get_bool, find_bool, to_bool)
MOA_GGUF_GETTERS(std::string, get_string, find_string, to_string)
#undef MOA_GGUF_GETTERS

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) fail("{}: required metadata key '{}' is missing", name_, key);
  std::vector<std::string> out;
  for (const Value& item : array_of(name_, key, *v)) out.push_back(to_string(name_, key, item));
  return out;
}

std::vector<float> GgufFile::get_float_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) fail("{}: required metadata key '{}' is missing", name_, key);
  std::vector<float> out;
  for (const Value& item : array_of(name_, key, *v))
    out.push_back(static_cast<float>(to_float(name_, key, item)));
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) fail("{}: required metadata key '{}' is missing", name_, key);
  std::vector<int64_t> out;
  for (const Value& item : array_of(name_, key, *v)) out.push_back(to_int(name_, key, item));
  return out;
}

std::optional<size_t> GgufFile::find_array_size(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  return array_of(name_, key, *v).size();
}

}  // namespace moa::gguf
