// GGUF reader: maps the file, validates every header field before use, and exposes metadata and
// tensor views into the mapping. Every error names the file and the offending field.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/types.h"
#include "gguf/value.h"
#include "util/mapped_file.h"

namespace moa::gguf {

inline constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
inline constexpr uint64_t kDefaultAlignment = 32;

struct TensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ne[0] is the row length (contiguous), as in ggml
  TensorType type = TensorType::kF32;
  uint64_t offset = 0;  // from the start of the data section
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // points into the mapping

  int64_t n_elements() const;
  int64_t row_length() const { return ne.empty() ? 1 : ne[0]; }
  int64_t n_rows() const { return row_length() == 0 ? 0 : n_elements() / row_length(); }
  std::string shape_string() const;  // "[64, 512]"
};

struct KeyValue {
  std::string key;
  Value value;
};

class GgufFile {
 public:
  // Opens and validates `path`. Throws moa::Error ("<path>: <field>: <problem>") on bad input.
  static GgufFile open(const std::string& path, FileLoad load = FileLoad::kMap);
  // Parses an in-memory image (tests, fuzzing); `name` stands in for the path in errors.
  static GgufFile parse(std::span<const uint8_t> bytes, const std::string& name);

  const std::string& path() const { return name_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return bytes_.size(); }

  const std::vector<KeyValue>& metadata() const { return metadata_; }
  const Value* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters: get_* throw if the key is missing or has the wrong type; find_* return
  // nullopt when missing and throw on a wrong type. Integers of any width convert when in range.
  uint64_t get_uint(std::string_view key) const;
  std::optional<uint64_t> find_uint(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  std::optional<int64_t> find_int(std::string_view key) const;
  double get_float(std::string_view key) const;  // accepts integers too
  std::optional<double> find_float(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  std::optional<bool> find_bool(std::string_view key) const;
  std::string get_string(std::string_view key) const;
  std::optional<std::string> find_string(std::string_view key) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<float> get_float_array(std::string_view key) const;
  std::vector<int64_t> get_int_array(std::string_view key) const;
  // Length of an array value without converting it; nullopt when missing.
  std::optional<size_t> find_array_size(std::string_view key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  const TensorInfo& tensor(std::string_view name) const;  // throws naming the missing tensor

  // FNV-1a 64-bit hash (hex) of general.architecture, the `<arch>.*` hyper-parameters and the
  // tensor names and shapes: identifies a model for plan files whatever its quantisation.
  std::string metadata_hash() const;

 private:
  GgufFile() = default;
  void parse_image();

  MappedFile mapping_;
  std::vector<uint8_t> owned_;  // used by parse() only
  std::span<const uint8_t> bytes_;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<KeyValue> metadata_;
  std::map<std::string, size_t, std::less<>> metadata_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace moa::gguf
