// GGUF reader/writer: round trips of every value type and layout option, the real model files,
// and one test per kind of malformed input (each must give a one-line error naming the field).
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "support/assets.h"
#include "util/error.h"

namespace moa::gguf {
namespace {

GgufWriter small_writer() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set("u8", Value::uint(ValueType::kUint8, 200));
  w.set("i8", Value::sint(ValueType::kInt8, -100));
  w.set("u16", Value::uint(ValueType::kUint16, 60000));
  w.set("i16", Value::sint(ValueType::kInt16, -30000));
  w.set_u32("u32", 4000000000u);
  w.set("i32", Value::i32(-2000000000));
  w.set("u64", Value::u64(1ull << 40));
  w.set("i64", Value::sint(ValueType::kInt64, -(1ll << 40)));
  w.set_f32("f32", 0.25f);
  w.set("f64", Value::f64(1e-300));
  w.set_bool("flag", true);
  w.set_string("text", "héllo");
  w.set("strings", Value::string_array({"a", "", "ccc"}));
  w.set("nested",
        Value::array(ValueType::kArray, {Value::i32_array({1, 2}), Value::i32_array({})}));
  w.add_tensor("a", TensorType::kF32, {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  w.add_tensor("b", TensorType::kF32, {3}, {-1, -2, -3});
  return w;
}

std::string expect_error(const std::vector<uint8_t>& bytes) {
  try {
    GgufFile::parse(bytes, "bad.gguf");
  } catch (const Error& e) {
    std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_EQ(message.rfind("bad.gguf: ", 0), 0u) << message;
    return message;
  }
  ADD_FAILURE() << "no error for malformed input";
  return {};
}

template <typename T>
void poke(std::vector<uint8_t>& bytes, size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

TEST(GgufFile, RoundTripsEveryValueType) {
  GgufFile f = GgufFile::parse(small_writer().serialize(), "mem");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_uint("u8"), 200u);
  EXPECT_EQ(f.get_int("i8"), -100);
  EXPECT_EQ(f.get_uint("u16"), 60000u);
  EXPECT_EQ(f.get_int("i16"), -30000);
  EXPECT_EQ(f.get_uint("u32"), 4000000000u);
  EXPECT_EQ(f.get_int("i32"), -2000000000);
  EXPECT_EQ(f.get_uint("u64"), 1ull << 40);
  EXPECT_EQ(f.get_int("i64"), -(1ll << 40));
  EXPECT_EQ(f.get_float("f32"), 0.25);
  EXPECT_EQ(f.get_float("f64"), 1e-300);
  EXPECT_TRUE(f.get_bool("flag"));
  EXPECT_EQ(f.get_string("text"), "héllo");
  EXPECT_EQ(f.get_string_array("strings"), (std::vector<std::string>{"a", "", "ccc"}));
  const Value* nested = f.find("nested");
  ASSERT_NE(nested, nullptr);
  ASSERT_EQ(nested->items().size(), 2u);
  EXPECT_EQ(nested->items()[0].items()[1].type, ValueType::kInt32);
  EXPECT_EQ(std::get<int64_t>(nested->items()[0].items()[1].data), 2);
  EXPECT_TRUE(nested->items()[1].items().empty());
  EXPECT_FALSE(f.find_uint("absent").has_value());
}

TEST(GgufFile, ExposesTensorsInPlace) {
  GgufFile f = GgufFile::parse(small_writer().serialize(), "mem");
  ASSERT_EQ(f.tensors().size(), 2u);
  const TensorInfo& a = f.tensor("a");
  EXPECT_EQ(a.ne, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(a.n_rows(), 2);
  EXPECT_EQ(a.n_bytes, 32u);
  EXPECT_EQ(a.shape_string(), "[4, 2]");
  float values[8];
  std::memcpy(values, a.data, sizeof(values));
  EXPECT_EQ(values[5], 6.0f);
  EXPECT_EQ(f.tensor("b").offset % 32, 0u);
  EXPECT_THROW(f.tensor("missing"), Error);
}

TEST(GgufFile, ReadsVersion2AndCustomAlignment) {
  GgufWriter w = small_writer();
  w.set_version(2);
  w.set_alignment(64);
  GgufFile f = GgufFile::parse(w.serialize(), "mem");
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.tensor("b").offset, 64u);
}

TEST(GgufFile, WrongTypeErrorNamesKey) {
  GgufFile f = GgufFile::parse(small_writer().serialize(), "mem");
  try {
    f.get_string("u32");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'u32': expected a string, got uint32"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(f.get_uint("i8"), Error);  // negative
  EXPECT_THROW(f.get_uint("missing.key"), Error);
}

TEST(GgufFile, MetadataHashIgnoresQuantisationButNotShape) {
  GgufWriter w = small_writer();
  std::string h1 = GgufFile::parse(w.serialize(), "m").metadata_hash();
  w.set_u32("general.file_type", 7);
  EXPECT_EQ(GgufFile::parse(w.serialize(), "m").metadata_hash(), h1);
  w.set_u32("llama.block_count", 3);
  EXPECT_NE(GgufFile::parse(w.serialize(), "m").metadata_hash(), h1);
}

TEST(GgufFileErrors, MissingFile) {
  try {
    GgufFile::open("/nonexistent/model.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.gguf: cannot open file"),
              std::string::npos);
  }
}

TEST(GgufFileErrors, TruncatedAtEveryByte) {
  std::vector<uint8_t> bytes = small_writer().serialize();
  GgufFile whole = GgufFile::parse(bytes, "mem");
  const size_t data_end =
      whole.data_offset() + whole.tensor("b").offset + whole.tensor("b").n_bytes;
  for (size_t n = 0; n < data_end; ++n) {
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + n);
    std::string message = expect_error(prefix);
    EXPECT_FALSE(message.empty()) << "prefix of " << n << " bytes";
  }
}

TEST(GgufFileErrors, WrongMagic) {
  std::vector<uint8_t> bytes = small_writer().serialize();
  bytes[0] = 'X';
  EXPECT_NE(expect_error(bytes).find("header.magic: not a GGUF file"), std::string::npos);
}

TEST(GgufFileErrors, UnsupportedVersion) {
  std::vector<uint8_t> bytes = small_writer().serialize();
  poke<uint32_t>(bytes, 4, 1);
  EXPECT_NE(expect_error(bytes).find("unsupported GGUF version 1"), std::string::npos);
  poke<uint32_t>(bytes, 4, 4);
  EXPECT_NE(expect_error(bytes).find("unsupported GGUF version 4"), std::string::npos);
}

TEST(GgufFileErrors, AbsurdCounts) {
  std::vector<uint8_t> bytes = small_writer().serialize();
  poke<uint64_t>(bytes, 8, 1ull << 60);
  EXPECT_NE(expect_error(bytes).find("header.tensor_count"), std::string::npos);
  bytes = small_writer().serialize();
  poke<uint64_t>(bytes, 16, ~0ull);
  EXPECT_NE(expect_error(bytes).find("header.metadata_kv_count"), std::string::npos);
}

TEST(GgufFileErrors, AbsurdStringLength) {
  std::vector<uint8_t> bytes = small_writer().serialize();
  poke<uint64_t>(bytes, 24, 1ull << 62);  // length of the first key
  EXPECT_NE(expect_error(bytes).find("metadata[0].key: string length"), std::string::npos);
}

TEST(GgufFileErrors, AbsurdArrayLength) {
  GgufWriter w;
  w.set("arr", Value::i32_array({1, 2, 3}));
  std::vector<uint8_t> bytes = w.serialize();
  // header 24 + key (8 + 3) + value type 4 + element type 4 -> array length at 43
  poke<uint64_t>(bytes, 43, 1ull << 61);
  EXPECT_NE(expect_error(bytes).find("'arr': array length"), std::string::npos);
}

TEST(GgufFileErrors, UnknownValueType) {
  GgufWriter w;
  w.set_u32("k", 1);
  std::vector<uint8_t> bytes = w.serialize();
  poke<uint32_t>(bytes, 24 + 8 + 1, 99);
  EXPECT_NE(expect_error(bytes).find("unknown value type 99"), std::string::npos);
}

TEST(GgufFileErrors, DuplicateKeyAndTensorNames) {
  GgufWriter w;
  w.set_u32("kk", 1);
  w.set_u32("kx", 2);
  std::vector<uint8_t> bytes = w.serialize();
  bytes[24 + 8 + 2 + 4 + 4 + 8 + 1] = 'k';  // second key "kx" -> "kk"
  EXPECT_NE(expect_error(bytes).find("metadata key 'kk' appears twice"), std::string::npos);

  GgufWriter t;
  t.add_tensor("ta", TensorType::kF32, {1}, {1});
  t.add_tensor("tb", TensorType::kF32, {1}, {1});
  bytes = t.serialize();
  // second tensor name starts after the first info: 24 + (8+2) + 4 + 8 + 4 + 8 + 8
  bytes[24 + 10 + 4 + 8 + 4 + 8 + 8 + 1] = 'a';
  EXPECT_NE(expect_error(bytes).find("tensor name 'ta' appears twice"), std::string::npos);
}

TEST(GgufFileErrors, TensorByteSizeOverflowingU64) {
  GgufWriter t;
  t.add_tensor("w", TensorType::kF32, {2, 2}, {1, 2, 3, 4});
  std::vector<uint8_t> bytes = t.serialize();
  poke<uint64_t>(bytes, 24 + 9 + 4, 1ull << 31);  // 2^31 x 2^31 F32: 2^64 bytes, wraps to 0
  poke<uint64_t>(bytes, 24 + 9 + 4 + 8, 1ull << 31);
  EXPECT_NE(expect_error(bytes).find(
                "tensor 'w': 4611686018427387904 elements of F32 take more than 2^64 bytes"),
            std::string::npos);
}

TEST(GgufFileErrors, ControlBytesInNamesAreEscaped) {
  GgufWriter t;
  t.add_tensor("w\n\x1b", TensorType::kF32, {2}, {1, 2});
  std::vector<uint8_t> bytes = t.serialize();
  poke<uint32_t>(bytes, 24 + 11 + 4 + 8, 77);  // unknown type: the error names the tensor
  EXPECT_NE(expect_error(bytes).find("tensor 'w\\n\\e': unknown tensor type 77"),
            std::string::npos);
}

TEST(GgufFileErrors, UnknownTensorType) {
  GgufWriter t;
  t.add_tensor("w", TensorType::kF32, {2}, {1, 2});
  std::vector<uint8_t> bytes = t.serialize();
  poke<uint32_t>(bytes, 24 + 9 + 4 + 8, 77);
  EXPECT_NE(expect_error(bytes).find("tensor 'w': unknown tensor type 77"), std::string::npos);
}

TEST(GgufFileErrors, TensorDataOutOfRange) {
  GgufWriter t;
  t.add_tensor("w", TensorType::kF32, {2}, {1, 2});
  std::vector<uint8_t> bytes = t.serialize();
  poke<uint64_t>(bytes, 24 + 9 + 4 + 8 + 4, 1ull << 40);  // offset
  EXPECT_NE(expect_error(bytes).find("tensor 'w': data"), std::string::npos);
  bytes = t.serialize();
  poke<uint64_t>(bytes, 24 + 9 + 4, 1ull << 39);  // ne[0]: far more data than the file holds
  EXPECT_NE(expect_error(bytes).find("outside the data section"), std::string::npos);
  poke<uint64_t>(bytes, 24 + 9 + 4, 0);
  EXPECT_NE(expect_error(bytes).find("is zero or absurdly large"), std::string::npos);
}

TEST(GgufFileErrors, MisalignedOffsetAndBadAlignment) {
  GgufWriter t;
  t.add_tensor("w", TensorType::kF32, {2}, {1, 2});
  std::vector<uint8_t> bytes = t.serialize();
  poke<uint64_t>(bytes, 24 + 9 + 4 + 8 + 4, 4);
  EXPECT_NE(expect_error(bytes).find("not a multiple of the alignment 32"), std::string::npos);
  GgufWriter a;
  a.set_u32("general.alignment", 48);
  EXPECT_NE(expect_error(a.serialize()).find("'general.alignment': 48 is not a power of two"),
            std::string::npos);
}

TEST(GgufFileErrors, BadDimensionsAndBlockSizes) {
  GgufWriter t;
  t.add_tensor("w", TensorType::kF32, {2}, {1, 2});
  std::vector<uint8_t> bytes = t.serialize();
  poke<uint32_t>(bytes, 24 + 9, 7);  // n_dims
  EXPECT_NE(expect_error(bytes).find("n_dims 7"), std::string::npos);
  bytes = t.serialize();
  poke<uint32_t>(bytes, 24 + 9 + 4 + 8, static_cast<uint32_t>(TensorType::kQ8_0));
  EXPECT_NE(expect_error(bytes).find("not a multiple of the Q8_0 block size 32"),
            std::string::npos);
}

TEST(GgufFileErrors, OverlappingTensors) {
  GgufWriter t;
  t.add_tensor("w", TensorType::kF32, {2}, {1, 2});
  t.add_tensor("v", TensorType::kF32, {2}, {1, 2});
  std::vector<uint8_t> bytes = t.serialize();
  poke<uint64_t>(bytes, 24 + 9 + 4 + 8 + 4 + 8 + 9 + 4 + 8 + 4, 0);  // v's offset -> 0
  EXPECT_NE(expect_error(bytes).find("overlaps"), std::string::npos);
}

TEST(GgufFileRealModels, OpensEverySharedModel) {
  for (const char* name : {"stories260K.gguf", "stories260K-F16.gguf", "stories260K-Q8_0.gguf",
                           "stories260K-Q4_0.gguf", "llama-2-tiny-random.gguf"}) {
    MOA_REQUIRE_ASSET(path, std::string("models/") + name);
    GgufFile f = GgufFile::open(path);
    EXPECT_EQ(f.version(), 3u) << name;
    EXPECT_EQ(f.get_string("general.architecture"), "llama") << name;
    EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama") << name;
  }
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.tensors().size(), 48u);
  EXPECT_EQ(f.get_uint("llama.block_count"), 5u);
  EXPECT_EQ(f.tensor("token_embd.weight").ne, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(f.find_array_size("tokenizer.ggml.tokens"), 512u);
}

TEST(GgufFileRealModels, OpensVocabOnlyFiles) {
  MOA_REQUIRE_ASSET(path, "data/tokenizer/ggml-vocab-gpt-2.gguf");
  GgufFile f = GgufFile::open(path);
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(f.find_array_size("tokenizer.ggml.merges"), 50000u);
}

TEST(GgufWriter, WritesAtomically) {
  std::string path = test::temp_dir() + "/m.gguf";
  small_writer().write(path);
  EXPECT_EQ(GgufFile::open(path).tensors().size(), 2u);
}

}  // namespace
}  // namespace moa::gguf
