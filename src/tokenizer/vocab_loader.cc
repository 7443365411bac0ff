// Tokenizer::from_gguf: reads the tokenizer.ggml.* keys into a Vocab with the defaults and
// load-time fixes of llama.cpp's llama_vocab::impl::load (default special ids per model, flags
// per pre-tokenizer, EOT/EOG detection by token text, Phi-3 rstrip, special-token cache), so
// that encoding matches llama.cpp token for token.
#include <algorithm>
#include <array>
#include <cctype>
#include <string_view>

#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"
#include "util/error.h"
#include "util/printable.h"

namespace moa {
namespace {

constexpr std::string_view kKeyModel = "tokenizer.ggml.model";
constexpr std::string_view kKeyPre = "tokenizer.ggml.pre";
constexpr std::string_view kKeyTokens = "tokenizer.ggml.tokens";
constexpr std::string_view kKeyScores = "tokenizer.ggml.scores";
constexpr std::string_view kKeyTokenType = "tokenizer.ggml.token_type";
constexpr std::string_view kKeyMerges = "tokenizer.ggml.merges";

bool is_one_of(std::string_view s, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), s) != names.end();
}

void read_model_kind(const gguf::GgufFile& file, Vocab& vocab) {
  const std::optional<std::string> model = file.find_string(kKeyModel);
  if (!model) fail("{}: {}: missing (the file carries no tokenizer)", file.path(), kKeyModel);
  vocab.model_name = *model;
  if (*model == "llama") {
    vocab.kind = TokenizerKind::kSentencePiece;
    vocab.bos = 1;
    vocab.eos = 2;
    vocab.unk = 0;
  } else if (*model == "gpt2") {
    vocab.kind = TokenizerKind::kBytePairEncoding;
    vocab.bos = 11;
    vocab.eos = 11;
  } else {
    fail("{}: {} '{}' is not supported (supported: llama, gpt2)", file.path(), kKeyModel,
         printable(*model));
  }
  vocab.pre_name = file.find_string(kKeyPre).value_or("default");
  if (vocab.pre_name.empty()) vocab.pre_name = "default";
  if (vocab.kind == TokenizerKind::kBytePairEncoding) {
    try {
      bpe_pretokenizer_regexes(vocab.pre_name);  // unknown names fail at load, as in llama.cpp
    } catch (const Error& e) {
      fail("{}: {}", file.path(), e.what());
    }
  }
}

// Flags llama.cpp sets from the model type and, for BPE, the pre-tokenizer name; the GGUF keys
// read later override them.
void set_default_flags(Vocab& vocab) {
  if (vocab.kind == TokenizerKind::kSentencePiece) {
    vocab.add_space_prefix = true;
    vocab.clean_spaces = false;
    vocab.add_bos = true;
    vocab.add_eos = false;
    return;
  }
  const std::string_view pre = vocab.pre_name;
  vocab.add_space_prefix = false;
  vocab.add_bos = false;
  vocab.add_eos = false;
  vocab.clean_spaces =
      !is_one_of(pre, {"deepseek-llm", "deepseek-coder", "deepseek-v3", "command-r", "qwen2",
                       "deepseek-r1-qwen", "poro-chat", "viking", "tekken", "smollm", "chameleon",
                       "gpt-4o", "minerva-7b", "megrez"});
  const bool llama3_family = is_one_of(pre, {"llama3", "llama-v3", "llama-bpe", "falcon3"});
  vocab.ignore_merges = llama3_family || pre == "tekken";
  vocab.add_bos = llama3_family || is_one_of(pre, {"tekken", "chameleon"});
}

void read_tokens(const gguf::GgufFile& file, Vocab& vocab) {
  if (!file.has(kKeyTokens)) fail("{}: {}: missing", file.path(), kKeyTokens);
  vocab.tokens = file.get_string_array(kKeyTokens);
  const size_t n = vocab.tokens.size();
  if (n == 0) fail("{}: {}: the token list is empty", file.path(), kKeyTokens);
  vocab.token_to_id.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    std::string& text = vocab.tokens[i];
    if (text.empty()) text = "[EMPTY_" + std::to_string(i) + "]";  // as llama.cpp renames them
    auto [it, inserted] = vocab.token_to_id.emplace(text, static_cast<TokenId>(i));
    if (!inserted) {
      fail("{}: {}: token '{}' appears twice (ids {} and {})", file.path(), kKeyTokens,
           printable(text), it->second, i);
    }
  }
}

uint32_t attr_of_type(int64_t type) {
  switch (static_cast<TokenType>(type)) {
    case TokenType::kUnknown:
      return token_attr::kUnknown;
    case TokenType::kUnused:
      return token_attr::kUnused;
    case TokenType::kNormal:
      return token_attr::kNormal;
    case TokenType::kControl:
      return token_attr::kControl;
    case TokenType::kUserDefined:
      return token_attr::kUserDefined;
    case TokenType::kByte:
      return token_attr::kByte;
    default:
      return 0;
  }
}

void read_scores_and_types(const gguf::GgufFile& file, Vocab& vocab) {
  const size_t n = vocab.tokens.size();
  if (file.has(kKeyScores)) {
    vocab.scores = file.get_float_array(kKeyScores);
    if (vocab.scores.size() < n) {
      fail("{}: {}: {} scores for {} tokens", file.path(), kKeyScores, vocab.scores.size(), n);
    }
    vocab.scores.resize(n);
  } else if (vocab.kind == TokenizerKind::kSentencePiece) {
    fail("{}: {}: missing (required by tokenizer.ggml.model 'llama')", file.path(), kKeyScores);
  }
  vocab.types.assign(n, TokenType::kNormal);
  vocab.attrs.assign(n, token_attr::kNormal);
  if (!file.has(kKeyTokenType)) return;
  const std::vector<int64_t> types = file.get_int_array(kKeyTokenType);
  if (types.size() < n) {
    fail("{}: {}: {} token types for {} tokens", file.path(), kKeyTokenType, types.size(), n);
  }
  for (size_t i = 0; i < n; ++i) {
    vocab.types[i] = static_cast<TokenType>(types[i]);
    vocab.attrs[i] = attr_of_type(types[i]);
  }
}

void read_merges(const gguf::GgufFile& file, Vocab& vocab) {
  if (vocab.kind != TokenizerKind::kBytePairEncoding) return;
  if (!file.has(kKeyMerges)) {
    fail("{}: {}: missing (required by tokenizer.ggml.model 'gpt2')", file.path(), kKeyMerges);
  }
  const std::vector<std::string> merges = file.get_string_array(kKeyMerges);
  vocab.n_merges = static_cast<int64_t>(merges.size());
  vocab.merge_rank.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& merge = merges[rank];
    // llama.cpp splits at the first space after the first byte; no space -> an empty pair.
    const size_t space = merge.find(' ', 1);
    std::string key = space == std::string::npos ? std::string(" ") : merge;
    vocab.merge_rank.emplace(std::move(key), static_cast<int32_t>(rank));  // first rank wins
  }
}

// An id key overrides the default only when it names a token of the vocab; llama.cpp ignores
// out-of-range values (e.g. 4294967295 meaning "none") with a warning.
void read_token_id(const gguf::GgufFile& file, std::string_view key, const Vocab& vocab,
                   TokenId& id) {
  if (id >= static_cast<TokenId>(vocab.tokens.size())) id = -1;
  const gguf::Value* value = file.find(key);
  if (value == nullptr || !value->is_integer()) return;
  int64_t v = -1;
  if (const auto* u = std::get_if<uint64_t>(&value->data)) {
    v = *u < vocab.tokens.size() ? static_cast<int64_t>(*u) : -1;
  } else {
    v = std::get<int64_t>(value->data);
  }
  if (v >= 0 && v < static_cast<int64_t>(vocab.tokens.size())) id = static_cast<TokenId>(v);
}

void read_special_ids_and_flags(const gguf::GgufFile& file, Vocab& vocab) {
  read_token_id(file, "tokenizer.ggml.bos_token_id", vocab, vocab.bos);
  read_token_id(file, "tokenizer.ggml.eos_token_id", vocab, vocab.eos);
  read_token_id(file, "tokenizer.ggml.eot_token_id", vocab, vocab.eot);
  read_token_id(file, "tokenizer.ggml.eom_token_id", vocab, vocab.eom);
  read_token_id(file, "tokenizer.ggml.unknown_token_id", vocab, vocab.unk);
  read_token_id(file, "tokenizer.ggml.seperator_token_id", vocab, vocab.sep);
  read_token_id(file, "tokenizer.ggml.padding_token_id", vocab, vocab.pad);

  vocab.add_space_prefix =
      file.find_bool("tokenizer.ggml.add_space_prefix").value_or(vocab.add_space_prefix);
  vocab.add_bos = file.find_bool("tokenizer.ggml.add_bos_token").value_or(vocab.add_bos);
  vocab.add_eos = file.find_bool("tokenizer.ggml.add_eos_token").value_or(vocab.add_eos);
  if (vocab.add_bos && vocab.bos < 0) {
    fail("{}: tokenizer.ggml.add_bos_token is true but tokenizer.ggml.bos_token_id is not set",
         file.path());
  }
  if (vocab.add_eos && vocab.eos < 0) {
    fail("{}: tokenizer.ggml.add_eos_token is true but tokenizer.ggml.eos_token_id is not set",
         file.path());
  }
  vocab.linefeed = vocab.find(vocab.kind == TokenizerKind::kSentencePiece ? "<0x0A>" : "\xC4\x8A");
}

// Token texts llama.cpp treats as end-of-turn / end-of-generation when the GGUF does not say.
constexpr std::array<std::string_view, 8> kEotTexts = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<EOT>",
    "_<EOT>",
    "<\xEF\xBD\x9C"
    "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"};
constexpr std::array<std::string_view, 9> kEogTexts = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",  "<|endoftext|>",
    "<|eom_id|>", "<EOT>",      "_<EOT>",  "<|end_of_text|>"};
constexpr std::array<std::string_view, 9> kFimEogTexts = {
    "<|fim_pad|>",   "<fim-pad>",  "<fim_pad>", "<PAD>",       "<|fim_repo|>",
    "<|repo_name|>", "<fim-repo>", "<REPO>",    "<|file_sep|>"};

template <size_t N>
bool text_in(const std::array<std::string_view, N>& list, std::string_view text) {
  return std::find(list.begin(), list.end(), text) != list.end();
}

void add_eog(Vocab& vocab, TokenId id) {
  if (id < 0) return;
  if (std::find(vocab.eog_ids.begin(), vocab.eog_ids.end(), id) == vocab.eog_ids.end()) {
    vocab.eog_ids.push_back(id);
  }
}

// llama.cpp marks tokens found by text as control (they were mis-typed by the converter).
void mark_end_tokens(Vocab& vocab) {
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    const std::string& text = vocab.tokens[i];
    const auto id = static_cast<TokenId>(i);
    bool found = false;
    if (vocab.eot < 0 && text_in(kEotTexts, text)) {
      vocab.eot = id;
      found = true;
    }
    if (vocab.eom < 0 && text == "<|eom_id|>") {
      vocab.eom = id;
      found = true;
    }
    if (text_in(kFimEogTexts, text) || text_in(kEogTexts, text)) {
      add_eog(vocab, id);
      found = true;
    }
    if (found) vocab.attrs[i] |= token_attr::kControl;
    if (vocab.has_attr(id, token_attr::kControl) && text.find("unused") != std::string::npos) {
      vocab.attrs[i] |= token_attr::kUnused;
    }
  }
  add_eog(vocab, vocab.eos);
  add_eog(vocab, vocab.eot);
  add_eog(vocab, vocab.eom);
  std::sort(vocab.eog_ids.begin(), vocab.eog_ids.end());
}

void build_special_token_cache(Vocab& vocab) {
  constexpr uint32_t kSpecial =
      token_attr::kControl | token_attr::kUserDefined | token_attr::kUnknown;
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    if (vocab.attrs[i] & kSpecial)
      vocab.special_tokens_by_length.push_back(static_cast<TokenId>(i));
  }
  std::stable_sort(vocab.special_tokens_by_length.begin(), vocab.special_tokens_by_length.end(),
                   [&](TokenId a, TokenId b) {
                     return vocab.tokens[static_cast<size_t>(a)].size() >
                            vocab.tokens[static_cast<size_t>(b)].size();
                   });
}

// Phi-3's added tokens swallow the whitespace after them (llama.cpp keys this on general.name).
void apply_model_specific_attributes(const gguf::GgufFile& file, Vocab& vocab) {
  std::string name = file.find_string("general.name").value_or("");
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (name.find("phi-3") == std::string::npos && name.find("phi3") == std::string::npos) return;
  for (TokenId id : vocab.special_tokens_by_length)
    vocab.attrs[static_cast<size_t>(id)] |= token_attr::kRstrip;
  auto set_rstrip = [&](std::string_view text, bool on) {
    const TokenId id = vocab.find(text);
    if (id < 0) return;
    uint32_t& attr = vocab.attrs[static_cast<size_t>(id)];
    attr = on ? (attr | token_attr::kRstrip) : (attr & ~token_attr::kRstrip);
  };
  set_rstrip("</s>", true);
  for (std::string_view text : {"<unk>", "<s>", "<|endoftext|>"}) set_rstrip(text, false);
}

}  // namespace

Tokenizer Tokenizer::from_gguf(const gguf::GgufFile& file) {
  auto vocab = std::make_unique<Vocab>();
  read_model_kind(file, *vocab);
  set_default_flags(*vocab);
  read_tokens(file, *vocab);
  read_scores_and_types(file, *vocab);
  read_merges(file, *vocab);
  read_special_ids_and_flags(file, *vocab);
  mark_end_tokens(*vocab);
  build_special_token_cache(*vocab);
  apply_model_specific_attributes(file, *vocab);
  return Tokenizer(std::move(vocab));
}

}  // namespace moa
