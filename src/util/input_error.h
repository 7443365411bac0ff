// An error about one value a caller passed in (a density, a plan path, a depth), tagged with the
// value's field name ("density") so the CLI can name the flag it came from ("--density: ...")
// while library code never names flags.
#pragma once

#include <fmt/format.h>

#include <string>
#include <utility>

#include "util/error.h"

namespace moa {

class InputError : public Error {
 public:
  InputError(std::string field, const std::string& message)
      : Error(message), field_(std::move(field)) {}
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

// Throws moa::InputError about `field` with a fmt-formatted message that names the value and
// what was expected.
template <typename... Args>
[[noreturn]] void fail_input(std::string field, fmt::format_string<Args...> format,
                             Args&&... args) {
  throw InputError(std::move(field), fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace moa
