// GGUF serialisation: header, metadata, tensor infos, then tensor data, each tensor aligned.
#include "gguf/gguf_writer.h"

#include <cstring>

#include "gguf/gguf_file.h"
#include "gguf/quant.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace moa::gguf {
namespace {

class ByteSink {
 public:
  template <typename T>
  void put(T value) {
    append(&value, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    append(s.data(), s.size());
  }
  // resize + memcpy rather than insert: GCC 12 reports a false stringop-overflow on the latter.
  void append(const void* data, size_t n) {
    if (n == 0) return;
    const size_t old = bytes.size();
    bytes.resize(old + n);
    std::memcpy(bytes.data() + old, data, n);
  }
  void pad_to(uint64_t alignment) {
    bytes.resize((bytes.size() + alignment - 1) / alignment * alignment, 0);
  }
  std::vector<uint8_t> bytes;
};

void put_value(ByteSink& out, const Value& v) {
  switch (v.type) {
    case ValueType::kUint8:
      out.put<uint8_t>(static_cast<uint8_t>(std::get<uint64_t>(v.data)));
      break;
    case ValueType::kUint16:
      out.put<uint16_t>(static_cast<uint16_t>(std::get<uint64_t>(v.data)));
      break;
    case ValueType::kUint32:
      out.put<uint32_t>(static_cast<uint32_t>(std::get<uint64_t>(v.data)));
      break;
    case ValueType::kUint64:
      out.put<uint64_t>(std::get<uint64_t>(v.data));
      break;
    case ValueType::kInt8:
      out.put<int8_t>(static_cast<int8_t>(std::get<int64_t>(v.data)));
      break;
    case ValueType::kInt16:
      out.put<int16_t>(static_cast<int16_t>(std::get<int64_t>(v.data)));
      break;
    case ValueType::kInt32:
      out.put<int32_t>(static_cast<int32_t>(std::get<int64_t>(v.data)));
      break;
    case ValueType::kInt64:
      out.put<int64_t>(std::get<int64_t>(v.data));
      break;
    case ValueType::kFloat32:
      out.put<float>(static_cast<float>(std::get<double>(v.data)));
      break;
    case ValueType::kFloat64:
      out.put<double>(std::get<double>(v.data));
      break;
    case ValueType::kBool:
      out.put<uint8_t>(std::get<bool>(v.data) ? 1 : 0);
      break;
    case ValueType::kString:
      out.put_string(std::get<std::string>(v.data));
      break;
    case ValueType::kArray:
      out.put<uint32_t>(static_cast<uint32_t>(v.element_type));
      out.put<uint64_t>(v.items().size());
      for (const Value& item : v.items()) put_value(out, item);
      break;
  }
}

}  // namespace

void GgufWriter::set(const std::string& key, Value value) {
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(key, std::move(value));
}

void GgufWriter::remove(const std::string& key) {
  std::erase_if(metadata_, [&](const auto& kv) { return kv.first == key; });
}

void GgufWriter::set_alignment(uint64_t alignment) {
  alignment_ = alignment;
  if (alignment != 32) set_u32("general.alignment", static_cast<uint32_t>(alignment));
}

void GgufWriter::add_tensor_bytes(const std::string& name, TensorType type, std::vector<int64_t> ne,
                                  std::vector<uint8_t> bytes) {
  tensors_.push_back({name, type, std::move(ne), std::move(bytes)});
}

void GgufWriter::add_tensor(const std::string& name, TensorType type, std::vector<int64_t> ne,
                            const std::vector<float>& values) {
  const int64_t row = ne.at(0);
  const int64_t n_rows = static_cast<int64_t>(values.size()) / row;
  const size_t bytes_per_row = row_bytes(type, row);
  std::vector<uint8_t> bytes(bytes_per_row * n_rows);
  for (int64_t r = 0; r < n_rows; ++r) {
    quantize_row(type, values.data() + r * row, bytes.data() + r * bytes_per_row, row);
  }
  add_tensor_bytes(name, type, std::move(ne), std::move(bytes));
}

std::vector<uint8_t> GgufWriter::serialize() const {
  ByteSink out;
  out.put<uint32_t>(kMagic);
  out.put<uint32_t>(version_);
  out.put<uint64_t>(tensors_.size());
  out.put<uint64_t>(metadata_.size());
  for (const auto& [key, value] : metadata_) {
    out.put_string(key);
    out.put<uint32_t>(static_cast<uint32_t>(value.type));
    put_value(out, value);
  }
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    out.put_string(t.name);
    out.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) out.put<uint64_t>(static_cast<uint64_t>(d));
    out.put<uint32_t>(static_cast<uint32_t>(t.type));
    out.put<uint64_t>(offset);
    offset += (t.bytes.size() + alignment_ - 1) / alignment_ * alignment_;
  }
  out.pad_to(alignment_);
  for (const PendingTensor& t : tensors_) {
    out.append(t.bytes.data(), t.bytes.size());
    out.pad_to(alignment_);
  }
  return out.bytes;
}

void GgufWriter::write(const std::string& path) const {
  std::vector<uint8_t> bytes = serialize();
  write_file_atomically(
      path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace moa::gguf
