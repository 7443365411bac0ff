// Chat templates (see chat_template.h), written to produce the same text as llama.cpp's built-in
// templates of the same names for a system message and one user turn. BOS is not included: the
// tokenizer adds it as the vocab says.
#include "engine/chat_template.h"

#include <fmt/format.h>

#include "util/error.h"
#include "util/input_error.h"

namespace moa {

namespace {

std::string llama2(const std::string& system, const std::string& user) {
  if (system.empty()) return fmt::format("[INST] {} [/INST]", user);
  return fmt::format("[INST] <<SYS>>\n{}\n<</SYS>>\n\n{} [/INST]", system, user);
}

std::string llama3(const std::string& system, const std::string& user) {
  std::string out;
  if (!system.empty()) {
    out += fmt::format("<|start_header_id|>system<|end_header_id|>\n\n{}<|eot_id|>", system);
  }
  out += fmt::format("<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>", user);
  out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

std::string chatml(const std::string& system, const std::string& user) {
  std::string out;
  if (!system.empty()) out += fmt::format("<|im_start|>system\n{}<|im_end|>\n", system);
  out += fmt::format("<|im_start|>user\n{}<|im_end|>\n", user);
  out += "<|im_start|>assistant\n";
  return out;
}

}  // namespace

std::vector<std::string> chat_template_names() { return {"raw", "llama2", "llama3", "chatml"}; }

std::string apply_chat_template(const std::string& name, const std::string& system,
                                const std::string& user) {
  if (name == "raw") return system.empty() ? user : system + "\n\n" + user;
  if (name == "llama2") return llama2(system, user);
  if (name == "llama3") return llama3(system, user);
  if (name == "chatml") return chatml(system, user);
  fail_input("chat template",
             "'{}' is not a known template (expected one of: raw, llama2, llama3, chatml)", name);
}

std::vector<std::string> chat_template_stops(const std::string& name) {
  if (name == "llama2") return {"[INST]"};
  if (name == "llama3") return {"<|eot_id|>"};
  if (name == "chatml") return {"<|im_end|>"};
  return {};
}

}  // namespace moa
