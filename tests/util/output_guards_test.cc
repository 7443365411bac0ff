// Guards on what moa writes: write_file_atomically refuses targets it would destroy (a FIFO, a
// folder, a model the process reads, an empty path) before writing anything, and json_text
// writes JSON whose strings came from files with invalid UTF-8 instead of throwing.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "support/assets.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/json_fields.h"

namespace moa {
namespace {

std::string error_of(const std::string& path) {
  try {
    write_file_atomically(path, "new content");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(WriteFileAtomically, RefusesTargetsThatAreNotRegularFiles) {
  const std::string dir = test::temp_dir();
  ASSERT_EQ(::mkfifo((dir + "/fifo").c_str(), 0600), 0);
  EXPECT_EQ(error_of(dir + "/fifo"),
            dir +
                "/fifo: not a regular file (moa writes its outputs only to regular files, as it "
                "replaces them whole)");
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_NE(error_of(dir).find("not a regular file"), std::string::npos);
  EXPECT_EQ(error_of(""), "an empty output path (expected a file name)");
}

TEST(WriteFileAtomically, RefusesAFileKeptFromOverwriteAndItsHardLinks) {
  const std::string dir = test::temp_dir();
  const std::string model = dir + "/model.gguf", link = dir + "/link.gguf";
  std::ofstream(model) << "GGUF";
  ASSERT_EQ(::link(model.c_str(), link.c_str()), 0);
  write_file_atomically(dir + "/other.json", "{}");  // not kept: written as usual
  keep_from_overwrite(model);
  EXPECT_EQ(error_of(model),
            model + ": is an input of this command (expected another output path)");
  EXPECT_NE(error_of(link).find("is an input of this command"), std::string::npos);
  EXPECT_EQ(test::read_file(model), "GGUF");
  write_file_atomically(dir + "/other.json", "[]");
  EXPECT_EQ(test::read_file(dir + "/other.json"), "[]");
}

TEST(JsonText, ReplacesInvalidUtf8InsteadOfThrowing) {
  const nlohmann::json j = {{"name", std::string("bad\xff name")}, {"n", 3}};
  EXPECT_THROW((void)j.dump(), nlohmann::json::type_error);
  EXPECT_EQ(json_fields::json_text(j), "{\"n\":3,\"name\":\"bad\xef\xbf\xbd name\"}");
  EXPECT_EQ(json_fields::json_text(nlohmann::json{{"a", 1}}, 1), "{\n \"a\": 1\n}");
}

}  // namespace
}  // namespace moa
