// The one table from the fields library errors name (moa::InputError: "density", "plan", ...)
// to the flags that carry them, so only cli/ knows flag names and every `error:` line still
// names the flag the user typed.
#include <array>
#include <charconv>
#include <string>
#include <string_view>

#include "cli/commands.h"

namespace moa::cli {
namespace {

struct FieldFlag {
  std::string_view command;  // empty: every command
  std::string_view field;
  std::string_view flag;
};

constexpr std::array kFieldFlags = {
    FieldFlag{"", "method", "--method"},
    FieldFlag{"", "plan", "--plan"},
    FieldFlag{"", "density", "--density"},
    FieldFlag{"", "sinks", "--sinks"},
    FieldFlag{"", "kv type", "--kv-type"},
    FieldFlag{"", "window", "--window"},
    FieldFlag{"", "temperature", "--temp"},
    FieldFlag{"", "top-k", "--top-k"},
    FieldFlag{"", "top-p", "--top-p"},
    FieldFlag{"", "min-p", "--min-p"},
    FieldFlag{"", "repeat penalty", "--repeat-penalty"},
    FieldFlag{"", "repeat window", "--repeat-last-n"},
    FieldFlag{"", "chat template", "--chat-template"},
    FieldFlag{"", "test size", "-p/-n"},
    FieldFlag{"", "repeats", "-r"},
    FieldFlag{"", "depth", "--ctx"},
    FieldFlag{"eval", "depth", "--lengths"},
    FieldFlag{"", "batch", "--batch"},
    FieldFlag{"", "lengths", "--lengths"},
    FieldFlag{"calibrate", "samples", "-n"},
    FieldFlag{"", "max answer", "--max-answer"},
    FieldFlag{"", "tasks", "--tasks"},
    FieldFlag{"eval", "tasks", "--task"},
    FieldFlag{"", "source", "--source"},
};

}  // namespace

CLI::Option* add_seed_option(CLI::App& cmd, uint64_t& seed, const std::string& description) {
  const CLI::Validator whole_number(
      [](const std::string& text) {
        int64_t value = 0;
        const char* end = text.data() + text.size();
        const auto [ptr, ec] = std::from_chars(text.data(), end, value);
        if (ec == std::errc() && ptr == end && value >= 0) return std::string();
        return "'" + text + "' is not a seed (expected a whole number 0 .. 9223372036854775807)";
      },
      "");
  return cmd.add_option("--seed", seed, description)->check(whole_number);
}

std::string flag_for_field(std::string_view command, std::string_view field) {
  for (const FieldFlag& f : kFieldFlags) {
    if (f.field == field && f.command == command) return std::string(f.flag);
  }
  for (const FieldFlag& f : kFieldFlags) {
    if (f.field == field && f.command.empty()) return std::string(f.flag);
  }
  return std::string(field);
}

}  // namespace moa::cli
