// Sizes computed from user flags (-c, --ctx) or file fields (tensor shapes, plan spans) are
// multiplied in 64 bits only through these helpers, so an absurd input becomes a one-line error
// instead of a wrapped-around size and a crash far from the cause.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string_view>

namespace moa {

// a * b, or nullopt when the product does not fit in 64 bits.
std::optional<uint64_t> multiply_u64(uint64_t a, uint64_t b);

// The product of non-negative `factors` as a size; throws moa::Error
// "<what>: <a> x <b> x ... overflows 64 bits" (or names a negative factor).
uint64_t checked_product(std::string_view what, std::initializer_list<int64_t> factors);

}  // namespace moa
