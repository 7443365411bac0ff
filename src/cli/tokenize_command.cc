// `moa tokenize -m MODEL`: text (stdin, -p or -f) to token ids or pieces, like llama-tokenize.
// Only the vocabulary is read, so vocab-only GGUF files work too.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"
#include "util/json_fields.h"

namespace moa::cli {
namespace {

struct TokenizeOptions {
  std::string model_path;
  std::string prompt;
  std::string file;
  bool ids_only = false;
  bool no_bos = false;
  bool parse_special = false;
  bool json = false;
};

void run_tokenize(const TokenizeOptions& o, bool has_prompt) {
  gguf::GgufFile file = gguf::GgufFile::open(o.model_path);
  Tokenizer tokenizer = Tokenizer::from_gguf(file);
  std::string text = has_prompt        ? o.prompt
                     : !o.file.empty() ? read_text_file(o.file)
                                       : read_stdin();
  std::vector<TokenId> ids = tokenizer.encode(text, !o.no_bos, o.parse_special);
  if (o.json) {
    nlohmann::json j = nlohmann::json::array();
    for (TokenId id : ids) j.push_back({{"id", id}, {"piece", tokenizer.token_to_piece(id)}});
    fmt::print("{}\n", json_fields::json_text(j));
  } else if (o.ids_only) {
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
    fmt::print("{}\n", line);
  } else {
    for (TokenId id : ids) fmt::print("{:6} -> '{}'\n", id, tokenizer.token_to_piece(id));
  }
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "Tokenize text (stdin, -p or -f) with a GGUF model's tokenizer");
  cmd->add_option("-m,--model", o->model_path, "GGUF model or vocab file")->required();
  auto* prompt =
      cmd->add_option("-p,--prompt", o->prompt, "Text to tokenize (default: read standard input)");
  cmd->add_option("-f,--file", o->file, "Read the text from this file")->excludes(prompt);
  cmd->add_flag("--ids", o->ids_only, "Print only the ids, space-separated on one line");
  cmd->add_flag("--no-bos", o->no_bos, "Do not add BOS/EOS special tokens");
  cmd->add_flag("--parse-special", o->parse_special, "Turn text like <s> into special tokens");
  cmd->add_flag("--json", o->json, "Print [{\"id\":..,\"piece\":..}] as JSON");
  cmd->callback([o, prompt] { run_tokenize(*o, prompt->count() > 0); });
}

}  // namespace moa::cli
