// Overflow-checked size products (see checked_math.h), on the compiler's overflow builtins.
#include "util/checked_math.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <string>

#include "util/error.h"

namespace moa {

std::optional<uint64_t> multiply_u64(uint64_t a, uint64_t b) {
  uint64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product)) return std::nullopt;
  return product;
}

uint64_t checked_product(std::string_view what, std::initializer_list<int64_t> factors) {
  uint64_t product = 1;
  bool overflow = false;
  for (int64_t f : factors) {
    if (f < 0) fail("{}: size factor {} is negative", what, f);
    const std::optional<uint64_t> next = multiply_u64(product, static_cast<uint64_t>(f));
    overflow = overflow || !next;
    product = next.value_or(0);
  }
  if (overflow) fail("{}: size {} overflows 64 bits", what, fmt::join(factors, " x "));
  return product;
}

}  // namespace moa
