// GGUF writer: builds a file image from metadata and tensors (versions 2 and 3, any alignment).
// Used by tests to create models of every architecture and type, and by tools that emit GGUFs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/types.h"
#include "gguf/value.h"

namespace moa::gguf {

class GgufWriter {
 public:
  // Sets or replaces a metadata key (order of first insertion is kept).
  void set(const std::string& key, Value value);
  void set_string(const std::string& key, std::string v) { set(key, Value::string(std::move(v))); }
  void set_u32(const std::string& key, uint32_t v) { set(key, Value::u32(v)); }
  void set_f32(const std::string& key, float v) { set(key, Value::f32(v)); }
  void set_bool(const std::string& key, bool v) { set(key, Value::boolean(v)); }
  void remove(const std::string& key);

  // Adds a tensor whose bytes are already in `type`'s layout.
  void add_tensor_bytes(const std::string& name, TensorType type, std::vector<int64_t> ne,
                        std::vector<uint8_t> bytes);
  // Adds a tensor from F32 values, converting each row to `type`.
  void add_tensor(const std::string& name, TensorType type, std::vector<int64_t> ne,
                  const std::vector<float>& values);

  void set_version(uint32_t version) { version_ = version; }
  void set_alignment(uint64_t alignment);  // also writes general.alignment when not 32

  std::vector<uint8_t> serialize() const;
  void write(const std::string& path) const;  // atomically

 private:
  struct PendingTensor {
    std::string name;
    TensorType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> bytes;
  };
  uint32_t version_ = 3;
  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace moa::gguf
