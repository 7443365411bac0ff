// Chat prompt formats of the common model families, chosen by name: llama2 ([INST]), llama3
// (header ids), chatml (<|im_start|>), or raw (the text as given). The result is tokenized with
// special tokens parsed, so the markers become their control tokens.
#pragma once

#include <string>
#include <vector>

namespace moa {

// One user turn (and an optional system message), ending where the assistant's reply begins.
// Throws moa::Error naming the accepted names for an unknown template.
std::string apply_chat_template(const std::string& name, const std::string& system,
                                const std::string& user);

std::vector<std::string> chat_template_names();

// Strings that end the assistant's turn in a template (used as extra stop strings); empty for raw.
std::vector<std::string> chat_template_stops(const std::string& name);

}  // namespace moa
