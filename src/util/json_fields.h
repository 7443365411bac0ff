// Reading fields of JSON files moa reads (plans, calibration sets, profiles, results) with one
// error style: "<file>: <path.to.field>: <what was expected>". Integers are range-checked
// before narrowing, so 4294967297 is never read as 1.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

namespace moa::json_fields {

using nlohmann::json;

// `j` as text; strings holding invalid UTF-8 (a GGUF's name, a path) get U+FFFD where
// nlohmann::json's dump would throw. indent -1: one line.
std::string json_text(const json& j, int indent = -1);

// Writes json_text(j, indent) and a newline to `path` atomically (util/atomic_file.h).
void write_json_file(const std::string& path, const json& j, int indent = -1);

// Parses `text`; a syntax error names the file, the byte offset and what the file should be.
json parse(const std::string& text, const std::string& file, const char* expected);

// The member `key` of object `obj` (path names it in errors, e.g. "samples[3].").
const json& member(const json& obj, const std::string& key, const std::string& file,
                   const std::string& path);
std::string string_field(const json& obj, const std::string& key, const std::string& file,
                         const std::string& path);
double number_field(const json& obj, const std::string& key, const std::string& file,
                    const std::string& path);
int64_t integer_field(const json& obj, const std::string& key, const std::string& file,
                      const std::string& path, int64_t min = std::numeric_limits<int64_t>::min(),
                      int64_t max = std::numeric_limits<int64_t>::max());
bool bool_field(const json& obj, const std::string& key, const std::string& file,
                const std::string& path);
const json& array_field(const json& obj, const std::string& key, const std::string& file,
                        const std::string& path);
// An array of integers, each in [min, max].
std::vector<int64_t> integer_array(const json& obj, const std::string& key, const std::string& file,
                                   const std::string& path, int64_t min, int64_t max);

}  // namespace moa::json_fields
