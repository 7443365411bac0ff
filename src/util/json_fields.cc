// JSON field readers with file/field-naming errors (see json_fields.h).
#include "util/json_fields.h"

#include "util/atomic_file.h"
#include "util/error.h"

namespace moa::json_fields {

std::string json_text(const json& j, int indent) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

void write_json_file(const std::string& path, const json& j, int indent) {
  write_file_atomically(path, json_text(j, indent) + "\n");
}

json parse(const std::string& text, const std::string& file, const char* expected) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({}): expected {}", file, e.id == 101 ? "syntax error" : "bad value",
         expected);
  }
}

const json& member(const json& obj, const std::string& key, const std::string& file,
                   const std::string& path) {
  if (!obj.is_object()) fail("{}: {}: expected an object", file, path.empty() ? "top level" : path);
  const auto it = obj.find(key);
  if (it == obj.end()) fail("{}: {}{}: required field is missing", file, path, key);
  return *it;
}

std::string string_field(const json& obj, const std::string& key, const std::string& file,
                         const std::string& path) {
  const json& v = member(obj, key, file, path);
  if (!v.is_string()) fail("{}: {}{}: expected a string, got {}", file, path, key, v.type_name());
  return v.get<std::string>();
}

double number_field(const json& obj, const std::string& key, const std::string& file,
                    const std::string& path) {
  const json& v = member(obj, key, file, path);
  if (!v.is_number()) fail("{}: {}{}: expected a number, got {}", file, path, key, v.type_name());
  return v.get<double>();
}

namespace {

int64_t checked_integer(const json& v, const std::string& file, const std::string& where,
                        int64_t min, int64_t max) {
  bool in_range = false;
  int64_t value = 0;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    in_range = u <= static_cast<uint64_t>(max);
    value = in_range ? static_cast<int64_t>(u) : 0;
    in_range = in_range && value >= min;
  } else if (v.is_number_integer()) {
    value = v.get<int64_t>();
    in_range = value >= min && value <= max;
  } else {
    fail("{}: {}: expected an integer, got {}", file, where,
         v.is_number_float() ? "a fraction" : v.type_name());
  }
  if (!in_range)
    fail("{}: {}: {} is out of range (expected {} .. {})", file, where, v.dump(), min, max);
  return value;
}

}  // namespace

int64_t integer_field(const json& obj, const std::string& key, const std::string& file,
                      const std::string& path, int64_t min, int64_t max) {
  return checked_integer(member(obj, key, file, path), file, path + key, min, max);
}

bool bool_field(const json& obj, const std::string& key, const std::string& file,
                const std::string& path) {
  const json& v = member(obj, key, file, path);
  if (!v.is_boolean())
    fail("{}: {}{}: expected true or false, got {}", file, path, key, v.type_name());
  return v.get<bool>();
}

const json& array_field(const json& obj, const std::string& key, const std::string& file,
                        const std::string& path) {
  const json& v = member(obj, key, file, path);
  if (!v.is_array()) fail("{}: {}{}: expected an array, got {}", file, path, key, v.type_name());
  return v;
}

std::vector<int64_t> integer_array(const json& obj, const std::string& key, const std::string& file,
                                   const std::string& path, int64_t min, int64_t max) {
  const json& a = array_field(obj, key, file, path);
  std::vector<int64_t> values;
  values.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    values.push_back(
        checked_integer(a[i], file, path + key + "[" + std::to_string(i) + "]", min, max));
  }
  return values;
}

}  // namespace moa::json_fields
