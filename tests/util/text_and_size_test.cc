// The two guards for untrusted input in util: printable() (no control byte reaches an error
// line or a terminal) and checked_product() (no size wraps around 64 bits).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "util/checked_math.h"
#include "util/error.h"
#include "util/printable.h"

namespace moa {
namespace {

TEST(Printable, KeepsPrintableAsciiAndUtf8) {
  EXPECT_EQ(printable("blk.0.attn_q.weight"), "blk.0.attn_q.weight");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x96\x81 \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x96\x81 \xf0\x9f\x98\x80");
  EXPECT_EQ(printable("back\\slash"), "back\\slash");
}

TEST(Printable, EscapesControlBytesAndInvalidUtf8) {
  EXPECT_EQ(printable("a\nb\rc\td"), "a\\nb\\rc\\td");
  EXPECT_EQ(printable("\x1b[31mred"), "\\e[31mred");
  EXPECT_EQ(printable(std::string("nul\0x", 5)), "nul\\x00x");
  EXPECT_EQ(printable("del\x7f"), "del\\x7f");
  EXPECT_EQ(printable("c1 \xc2\x9b csi"), "c1 \\xc2\\x9b csi");  // U+009B, a C1 CSI
  EXPECT_EQ(printable("raw \x9b csi"), "raw \\x9b csi");         // 8-bit CSI byte
  EXPECT_EQ(printable("cut \xe2\x96"), "cut \\xe2\\x96");        // truncated sequence
  EXPECT_EQ(printable("long \xc0\xaf"), "long \\xc0\\xaf");      // overlong '/'
  EXPECT_EQ(printable("surrogate \xed\xa0\x80"), "surrogate \\xed\\xa0\\x80");
}

TEST(Printable, IsIdempotent) {
  const std::string once = printable("x\n\x1b\xff");
  EXPECT_EQ(printable(once), once);
}

TEST(CheckedProduct, MultipliesSizesThatFit) {
  EXPECT_EQ(checked_product("kv", {2, 3, 4}), 24u);
  EXPECT_EQ(checked_product("kv", {}), 1u);
  EXPECT_EQ(checked_product("kv", {int64_t{1} << 62, 3, 0}),
            0u);  // zero after an overflow-free prefix
  EXPECT_EQ(multiply_u64(UINT64_MAX, 1), UINT64_MAX);
  EXPECT_FALSE(multiply_u64(uint64_t{1} << 32, uint64_t{1} << 32));
}

TEST(CheckedProduct, ThrowsNamingWhatOverflowed) {
  try {
    checked_product("kv cache", {5, 4611686018427387904, 64, 2});
    FAIL() << "no overflow reported";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "kv cache: size 5 x 4611686018427387904 x 64 x 2 overflows 64 bits");
  }
  EXPECT_THROW(checked_product("x", {4, -1}), Error);
}

}  // namespace
}  // namespace moa
