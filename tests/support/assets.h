// Test helpers: locating ../shared (MOA_TEST_ASSETS) and scratch files.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace moa::test {

// MOA_TEST_ASSETS if set, otherwise the compiled-in default (<repo>/../shared).
std::string assets_dir();
// Full path of a file under the assets dir, or "" when it does not exist.
std::string asset_path(const std::string& relative);
// A fresh empty folder under the system temp dir, removed at process exit.
std::string temp_dir();
std::string read_file(const std::string& path);
// A file of raw little-endian F32 values (llama.cpp's reference logits).
std::vector<float> read_f32_file(const std::string& path);
// Path of the built `moa` binary, and a helper that runs it and captures output.
std::string moa_binary();
struct CommandResult {
  int exit_code = 0;
  std::string out;  // stdout
  std::string err;  // stderr
};
// `prefix` goes before the binary on the shell line (e.g. "timeout 20", "ulimit -v N; ").
CommandResult run_moa(const std::string& args, const std::string& stdin_text = "",
                      const std::string& prefix = "");
// Starts `moa ARGS OUTPUT` and kills it with SIGKILL as soon as OUTPUT exists (a job killed
// after its first atomic write), then waits for it.
void run_moa_killed_after_first_write(const std::string& args, const std::string& output);
// A failed command: non-zero exit, exactly one stderr line "error: ..." containing `fragment`.
void expect_one_line_error(const CommandResult& result, const std::string& fragment);
// The "kv cache: 12,345 B" figure `moa generate` prints on stderr, or -1 when absent.
long long reported_kv_bytes(const std::string& err);
// The N of "at N = 305" in that line, or -1 when absent.
long long reported_kv_length(const std::string& err);
// The message of the moa::Error `f` throws, or "(no error)".
std::string error_of(const std::function<void()>& f);
// True under CI's ASan+UBSan run (MOA_TEST_SANITIZED set): slow end-to-end tests use fewer
// cases there, as the Release run checks them all.
bool sanitized_run();
// Token ids of a llama.cpp tokenizer test .out file: one line of space-separated ids per case.
std::vector<std::vector<int32_t>> parse_expected_ids(const std::string& content);

}  // namespace moa::test

// Skips the current test with a loud message when an asset is missing.
#define MOA_REQUIRE_ASSET(var, relative)                                                           \
  const std::string var = ::moa::test::asset_path(relative);                                       \
  if (var.empty()) {                                                                               \
    GTEST_SKIP() << "\n*** MISSING TEST ASSET: " << ::moa::test::assets_dir() << "/" << (relative) \
                 << " (set MOA_TEST_ASSETS to the shared folder) ***\n";                           \
  }
