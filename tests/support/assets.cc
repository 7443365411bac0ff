// Implementation of the test helpers in assets.h.
#include "support/assets.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace moa::test {

namespace fs = std::filesystem;

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

CommandResult run_moa(const std::string& args, const std::string& stdin_text) {
  std::string dir = temp_dir();
  std::string in_path = dir + "/stdin", out_path = dir + "/stdout", err_path = dir + "/stderr";
  std::ofstream(in_path, std::ios::binary) << stdin_text;
  std::string command = "'" + moa_binary() + "' " + args + " <'" + in_path + "' >'" + out_path +
                        "' 2>'" + err_path + "'";
  int status = std::system(command.c_str());
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  return result;
}

}  // namespace moa::test
