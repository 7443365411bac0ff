// Implementation of the test helpers in assets.h.
#include "support/assets.h"

#include "util/error.h"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace moa::test {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool sanitized_run() { return std::getenv("MOA_TEST_SANITIZED") != nullptr; }

std::string assets_dir() {
  const char* env = std::getenv("MOA_TEST_ASSETS");
  return (env != nullptr && *env != '\0') ? std::string(env) : std::string(MOA_TEST_ASSETS_DEFAULT);
}

std::string asset_path(const std::string& relative) {
  fs::path path = fs::path(assets_dir()) / relative;
  return fs::exists(path) ? path.string() : std::string();
}

namespace {
struct TempRoot {
  fs::path root;
  TempRoot() {
    std::string pattern = (fs::temp_directory_path() / "moa-test-XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    root = made != nullptr ? fs::path(made) : fs::temp_directory_path();
  }
  ~TempRoot() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};
}  // namespace

std::string temp_dir() {
  static TempRoot root;
  static int counter = 0;
  fs::path dir = root.root / std::to_string(counter++);
  fs::create_directories(dir);
  return dir.string();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string moa_binary() { return MOA_BINARY_PATH; }

CommandResult run_moa(const std::string& args, const std::string& stdin_text,
                      const std::string& prefix) {
  std::string dir = temp_dir();
  std::string in_path = dir + "/stdin", out_path = dir + "/stdout", err_path = dir + "/stderr";
  std::ofstream(in_path, std::ios::binary) << stdin_text;
  std::string command = prefix + " '" + moa_binary() + "' " + args + " <'" + in_path + "' >'" +
                        out_path + "' 2>'" + err_path + "'";
  int status = std::system(command.c_str());
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  return result;
}

void run_moa_killed_after_first_write(const std::string& args, const std::string& output) {
  const std::string script = fmt::format(
      "sh -c \"'{}' {}'{}' >/dev/null 2>&1 & p=\\$!; for i in \\$(seq 2000); do [ -f '{}' ] && "
      "break; sleep 0.002; done; kill -9 \\$p; wait \\$p; exit 0\"",
      moa_binary(), args, output, output);
  ASSERT_EQ(std::system(script.c_str()), 0);
}

void expect_one_line_error(const CommandResult& r, const std::string& fragment) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
}

namespace {
// The integer (digits and thousands commas) right after `label` in the "kv cache:" line.
long long number_after(const std::string& err, const std::string& label) {
  const auto line = err.find("kv cache: ");
  if (line == std::string::npos) return -1;
  const auto at = err.find(label, line);
  if (at == std::string::npos) return -1;
  std::string digits;
  for (size_t i = at + label.size();
       i < err.size() && (std::isdigit(static_cast<unsigned char>(err[i])) || err[i] == ','); ++i) {
    if (err[i] != ',') digits += err[i];
  }
  return digits.empty() ? -1 : std::stoll(digits);
}
}  // namespace

long long reported_kv_bytes(const std::string& err) { return number_after(err, "kv cache: "); }

long long reported_kv_length(const std::string& err) { return number_after(err, "at N = "); }

std::vector<std::vector<int32_t>> parse_expected_ids(const std::string& content) {
  std::vector<std::vector<int32_t>> lines;
  std::istringstream stream(content);
  std::string line;
  while (std::getline(stream, line)) {
    std::istringstream numbers(line);
    std::vector<int32_t> ids;
    int32_t id = 0;
    while (numbers >> id) ids.push_back(id);
    lines.push_back(std::move(ids));
  }
  return lines;
}

}  // namespace moa::test
