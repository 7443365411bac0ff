// GGUF parsing. The file is untrusted: every count, length and offset is checked against the
// bytes that remain before it is used, and errors say which field was wrong and where.
#include "gguf/gguf_file.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>

#include "gguf/quant.h"
#include "util/atomic_file.h"
#include "util/checked_math.h"
#include "util/error.h"
#include "util/printable.h"

namespace moa::gguf {
namespace {

constexpr uint32_t kMaxDims = 4;              // GGML_MAX_DIMS
constexpr int kMaxArrayNesting = 8;           // deeper nesting is certainly not a model file
constexpr uint64_t kMinKeyValueBytes = 13;    // key length + empty key + type + 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 24;  // name length + n_dims + type + offset

// Reads little-endian fields from the image, failing with the field's name on truncation.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& name) : bytes_(bytes), name_(name) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }
  const std::string& name() const { return name_; }

  template <typename T>
  T read(std::string_view field) {
    need(sizeof(T), field);
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  std::string read_string(std::string_view field) {
    const uint64_t offset = pos_;
    uint64_t length = read<uint64_t>(field);
    if (length > remaining()) {
      fail("{}: {}: string length {} at offset {} runs past the end of the file (size {})", name_,
           field, length, offset, bytes_.size());
    }
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), length);
    pos_ += length;
    return s;
  }

  void need(uint64_t n, std::string_view field) const {
    if (n > remaining()) {
      fail("{}: {}: unexpected end of file at offset {} (need {} more bytes, file size {})", name_,
           field, pos_, n, bytes_.size());
    }
  }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& name_;
  uint64_t pos_ = 0;
};

// Smallest encoded size of one value of `type` (used to reject absurd array counts early).
uint64_t min_value_bytes(ValueType type) {
  switch (type) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool:
      return 1;
    case ValueType::kUint16:
    case ValueType::kInt16:
      return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32:
      return 4;
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64:
      return 8;
    case ValueType::kString:
      return 8;
    case ValueType::kArray:
      return 12;
  }
  return 1;
}

ValueType read_value_type(Cursor& in, const std::string& field) {
  uint32_t code = in.read<uint32_t>(field);
  if (value_type_name(code) == nullptr) {
    fail("{}: {}: unknown value type {} (expected 0..12)", in.name(), field, code);
  }
  return static_cast<ValueType>(code);
}

Value read_value(Cursor& in, ValueType type, const std::string& field, int depth) {
  switch (type) {
    case ValueType::kUint8:
      return Value::uint(type, in.read<uint8_t>(field));
    case ValueType::kUint16:
      return Value::uint(type, in.read<uint16_t>(field));
    case ValueType::kUint32:
      return Value::uint(type, in.read<uint32_t>(field));
    case ValueType::kUint64:
      return Value::uint(type, in.read<uint64_t>(field));
    case ValueType::kInt8:
      return Value::sint(type, in.read<int8_t>(field));
    case ValueType::kInt16:
      return Value::sint(type, in.read<int16_t>(field));
    case ValueType::kInt32:
      return Value::sint(type, in.read<int32_t>(field));
    case ValueType::kInt64:
      return Value::sint(type, in.read<int64_t>(field));
    case ValueType::kFloat32:
      return Value{type, ValueType::kUint8, double{in.read<float>(field)}};
    case ValueType::kFloat64:
      return Value{type, ValueType::kUint8, in.read<double>(field)};
    case ValueType::kBool: {
      uint8_t b = in.read<uint8_t>(field);
      if (b > 1) fail("{}: {}: bool value {} (expected 0 or 1)", in.name(), field, b);
      return Value::boolean(b == 1);
    }
    case ValueType::kString:
      return Value::string(in.read_string(field));
    case ValueType::kArray: {
      if (depth >= kMaxArrayNesting) {
        fail("{}: {}: arrays nested deeper than {}", in.name(), field, kMaxArrayNesting);
      }
      ValueType element_type = read_value_type(in, field + " (array element type)");
      uint64_t count = in.read<uint64_t>(field + " (array length)");
      if (count > in.remaining() / min_value_bytes(element_type)) {
        fail("{}: {}: array length {} cannot fit in the {} bytes left in the file", in.name(),
             field, count, in.remaining());
      }
      Value::Array items;
      items.reserve(count);
      for (uint64_t i = 0; i < count; ++i)
        items.push_back(read_value(in, element_type, field, depth + 1));
      return Value::array(element_type, std::move(items));
    }
  }
  fail("{}: {}: unknown value type", in.name(), field);
}

uint64_t align_up(uint64_t x, uint64_t alignment) {
  return (x + alignment - 1) / alignment * alignment;
}

std::string describe_type(const Value& v) {
  const char* name = value_type_name(static_cast<uint32_t>(v.type));
  return name != nullptr ? name : "?";
}

}  // namespace

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

std::string TensorInfo::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

GgufFile GgufFile::open(const std::string& path, FileLoad load) {
  GgufFile file;
  file.mapping_ = MappedFile::open(path, load);
  keep_from_overwrite(path);  // no output of this process may replace the model it reads
  file.bytes_ = file.mapping_.bytes();
  file.name_ = path;
  file.parse_image();
  return file;
}

GgufFile GgufFile::parse(std::span<const uint8_t> bytes, const std::string& name) {
  GgufFile file;
  file.owned_.assign(bytes.begin(), bytes.end());
  file.bytes_ = file.owned_;
  file.name_ = name;
  file.parse_image();
  return file;
}

void GgufFile::parse_image() {
  Cursor in(bytes_, name_);
  uint32_t magic = in.read<uint32_t>("header.magic");
  if (magic != kMagic)
    fail("{}: header.magic: not a GGUF file (magic 0x{:08x}, expected 0x{:08x} \"GGUF\")", name_,
         magic, kMagic);
  version_ = in.read<uint32_t>("header.version");
  if (version_ != 2 && version_ != 3)
    fail("{}: header.version: unsupported GGUF version {} (supported: 2, 3)", name_, version_);
  uint64_t n_tensors = in.read<uint64_t>("header.tensor_count");
  uint64_t n_kv = in.read<uint64_t>("header.metadata_kv_count");
  if (n_kv > in.remaining() / kMinKeyValueBytes) {
    fail("{}: header.metadata_kv_count: {} key-value pairs cannot fit in a {}-byte file", name_,
         n_kv, bytes_.size());
  }
  if (n_tensors > in.remaining() / kMinTensorInfoBytes) {
    fail("{}: header.tensor_count: {} tensors cannot fit in a {}-byte file", name_, n_tensors,
         bytes_.size());
  }

  metadata_.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = in.read_string(fmt::format("metadata[{}].key", i));
    if (metadata_index_.count(key) != 0)
      fail("{}: metadata key '{}' appears twice", name_, printable(key));
    std::string field = fmt::format("metadata '{}'", printable(key));
    ValueType type = read_value_type(in, field + " (type)");
    Value value = read_value(in, type, field, 0);
    metadata_index_.emplace(key, metadata_.size());
    metadata_.push_back({std::move(key), std::move(value)});
  }

  if (const Value* a = find("general.alignment")) {
    if (!a->is_integer())
      fail("{}: metadata 'general.alignment': expected an integer, got {}", name_,
           describe_type(*a));
    uint64_t align = get_uint("general.alignment");
    if (align == 0 || (align & (align - 1)) != 0 || align > (1u << 20)) {
      fail("{}: metadata 'general.alignment': {} is not a power of two between 1 and 2^20", name_,
           align);
    }
    alignment_ = align;
  }

  tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo t;
    t.name = in.read_string(fmt::format("tensor[{}].name", i));
    std::string field = fmt::format("tensor '{}'", printable(t.name));
    if (tensor_index_.count(t.name) != 0)
      fail("{}: tensor name '{}' appears twice", name_, printable(t.name));
    uint32_t n_dims = in.read<uint32_t>(field + " n_dims");
    if (n_dims == 0 || n_dims > kMaxDims)
      fail("{}: {}: n_dims {} (expected 1..{})", name_, field, n_dims, kMaxDims);
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = in.read<uint64_t>(field + " shape");
      if (dim == 0 || dim > (uint64_t{1} << 40) ||
          n_elements > std::numeric_limits<int64_t>::max() / dim) {
        fail("{}: {}: dimension {} = {} is zero or absurdly large", name_, field, d, dim);
      }
      n_elements *= dim;
      t.ne.push_back(static_cast<int64_t>(dim));
    }
    uint32_t type_code = in.read<uint32_t>(field + " type");
    const char* type_name = tensor_type_name(type_code);
    t.type = static_cast<TensorType>(type_code);
    if (type_name == nullptr || type_block_bytes(t.type) == 0) {
      fail("{}: {}: unknown tensor type {}", name_, field, type_code);
    }
    int64_t block = type_block_elements(t.type);
    if (t.ne[0] % block != 0) {
      fail("{}: {}: row length {} is not a multiple of the {} block size {}", name_, field, t.ne[0],
           type_name, block);
    }
    const std::optional<uint64_t> n_bytes =
        multiply_u64(n_elements / static_cast<uint64_t>(block), type_block_bytes(t.type));
    if (!n_bytes) {
      fail("{}: {}: {} elements of {} take more than 2^64 bytes", name_, field, n_elements,
           type_name);
    }
    t.n_bytes = *n_bytes;
    t.offset = in.read<uint64_t>(field + " offset");
    if (t.offset % alignment_ != 0) {
      fail("{}: {}: data offset {} is not a multiple of the alignment {}", name_, field, t.offset,
           alignment_);
    }
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  data_offset_ = align_up(in.pos(), alignment_);
  const uint64_t data_size = data_offset_ <= bytes_.size() ? bytes_.size() - data_offset_ : 0;
  for (TensorInfo& t : tensors_) {
    if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
      fail(
          "{}: tensor '{}': data of {} bytes at offset {} lies outside the data section ({} bytes "
          "from offset {})",
          name_, printable(t.name), t.n_bytes, t.offset, data_size, data_offset_);
    }
    t.data = bytes_.data() + data_offset_ + t.offset;
  }
  std::vector<const TensorInfo*> by_offset;
  for (const TensorInfo& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i - 1]->offset + by_offset[i - 1]->n_bytes > by_offset[i]->offset) {
      fail("{}: tensor '{}': data overlaps tensor '{}'", name_, printable(by_offset[i]->name),
           printable(by_offset[i - 1]->name));
    }
  }
}

const Value* GgufFile::find(std::string_view key) const {
  auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].value;
}

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& GgufFile::tensor(std::string_view name) const {
  const TensorInfo* t = find_tensor(name);
  if (t == nullptr) fail("{}: tensor '{}' is missing", name_, printable(name));
  return *t;
}

std::string GgufFile::metadata_hash() const {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  };
  std::function<void(const Value&)> mix_value = [&](const Value& v) {
    mix(&v.type, sizeof(v.type));
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>) {
            mix(x.data(), x.size());
          } else if constexpr (std::is_same_v<T, Value::Array>) {
            for (const Value& item : x) mix_value(item);
          } else {
            mix(&x, sizeof(x));
          }
        },
        v.data);
  };
  // Quantisation-independent: the architecture's hyper-parameters and tensor shapes only.
  const std::string arch = find_string("general.architecture").value_or("");
  for (const KeyValue& kv : metadata_) {
    if (kv.key != "general.architecture" && !(kv.key.starts_with(arch + "."))) continue;
    mix(kv.key.data(), kv.key.size());
    mix_value(kv.value);
  }
  for (const TensorInfo& t : tensors_) {
    mix(t.name.data(), t.name.size());
    mix(t.ne.data(), t.ne.size() * sizeof(int64_t));
  }
  return fmt::format("{:016x}", h);
}

}  // namespace moa::gguf
