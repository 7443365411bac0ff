// Entry point of the `moa` binary: global flags, subcommand registration, and the one place
// where errors become a one-line message and a non-zero exit code.
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <sstream>
#include <string_view>
#include <system_error>

#include "cli/commands.h"
#include "engine/forward.h"
#include "util/error.h"
#include "util/input_error.h"
#include "util/printable.h"

namespace moa::cli {

std::string read_stdin() {
  std::ostringstream ss;
  ss << std::cin.rdbuf();
  return ss.str();
}

std::string read_text_file(const std::string& path) { return read_regular_file(path); }

int thread_count(int requested) {
  if (requested < 0 || requested > kMaxThreads) {
    fail("-t: {} is not a thread count (expected 1 .. {}, or 0 for all {} cores)", requested,
         kMaxThreads, default_thread_count());
  }
  return requested > 0 ? requested : default_thread_count();
}

void add_mmap_flag(CLI::App& cmd, bool& map_model) {
  cmd.add_flag("--mmap", map_model,
               "Map the model file instead of reading it into huge pages (less resident memory "
               "for a model near the RAM size; slower decode: a TLB miss per 4 KiB page)");
}

FileLoad model_file_load(bool map_model) {
  return map_model ? FileLoad::kMap : FileLoad::kReadIntoHugePages;
}

}  // namespace moa::cli

namespace {

// The one error line: file-derived text in the message cannot split it or reach the terminal.
int print_error(const std::string& message) {
  std::fflush(stdout);
  std::fprintf(stderr, "error: %s\n", moa::printable(message).c_str());
  return 1;
}

// An empty value ("-t ''", "-f ''") would read as 0 or as "not given": every option that takes a
// value refuses it, in every subcommand.
void refuse_empty_values(CLI::App& app) {
  const CLI::Validator non_empty(
      [](const std::string& value) {
        return value.empty() ? std::string("an empty value (expected one)") : std::string();
      },
      "");
  for (CLI::Option* option : app.get_options()) {
    if (option->get_type_size() != 0) option->check(non_empty);
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    refuse_empty_values(*sub);
  }
}

// Results go to stdout: a write that failed there (a full disk, a closed descriptor) is an error,
// not a silent success with the output lost.
int check_stdout() {
  std::cout.flush();
  errno = 0;
  const bool failed = !std::cout.good() || std::fflush(stdout) != 0 || std::ferror(stdout) != 0;
  if (!failed) return 0;
  const int saved = errno;
  return print_error(fmt::format("stdout: write failed{}{}", saved != 0 ? ": " : "",
                                 saved != 0 ? std::strerror(saved) : ""));
}

}  // namespace

int main(int argc, char** argv) {
  // Logs and progress go to stderr so stdout stays clean for results (ids, JSON, text).
  auto logger = spdlog::stderr_color_mt("moa");
  logger->set_pattern("%^%l%$: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::info);

  CLI::App app{"moa: Mixture of Sparse Attention inference engine for GGUF models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "moa 0.1.0");
  bool verbose = false, quiet = false;
  app.add_flag("-v,--verbose", verbose, "Log debug details");
  app.add_flag("-q,--quiet", quiet, "Only log warnings and errors");
  app.parse_complete_callback([&] {
    if (verbose) spdlog::set_level(spdlog::level::debug);
    if (quiet) spdlog::set_level(spdlog::level::warn);
  });

  moa::cli::register_inspect(app);
  moa::cli::register_tokenize(app);
  moa::cli::register_plan(app);
  moa::cli::register_bench(app);
  moa::cli::register_generate(app);
  moa::cli::register_calibrate(app);
  moa::cli::register_profile(app);
  moa::cli::register_eval(app);
  moa::cli::register_report(app);
  moa::cli::register_optimize(app);
  moa::cli::register_compress(app);
  moa::cli::register_answer_loss(app);
  refuse_empty_values(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return print_error(e.what());  // CLI11's own two-line report and exit codes break the rule
  } catch (const moa::InputError& e) {
    // Library code names the value and what was expected; the flag that carried it is added here.
    const std::string command =
        app.get_subcommands().empty() ? "" : app.get_subcommands().front()->get_name();
    return print_error(
        fmt::format("{}: {}", moa::cli::flag_for_field(command, e.field()), e.what()));
  } catch (const std::system_error& e) {
    // fmt::print's own report of a failed write names no stream: results are printed to stdout.
    constexpr std::string_view kFmtWrite = "cannot write to file";
    if (std::string_view(e.what()).starts_with(kFmtWrite)) {
      return print_error(fmt::format("stdout: write failed: {}", e.code().message()));
    }
    return print_error(e.what());
  } catch (const std::bad_alloc&) {
    return print_error("out of memory");
  } catch (const std::exception& e) {
    return print_error(e.what());
  }
  return check_stdout();
}
