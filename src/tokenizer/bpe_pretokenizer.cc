// BPE pre-tokenizer: splits text into words the way llama.cpp's unicode_regex_split does, for
// every tokenizer.ggml.pre name of the llama / qwen2 model families. llama.cpp does not run the
// Hugging Face regexes on Unicode text: for a regex that names \p{..} categories it first
// "collapses" each non-ASCII code point into one placeholder byte per category (letters 0xD2,
// digits 0xD1, ...; non-ASCII whitespace becomes \v) and matches a rewritten regex over those
// bytes with std::regex; regexes without categories run over the code points with non-ASCII
// whitespace turned into \v. We reproduce exactly that with PCRE2: the code point categories come
// from PCRE2's Unicode tables (UTF + UCP), the matching itself runs in PCRE2's byte or UTF mode
// without UCP, as std::regex's ASCII-only \s does. Results are llama.cpp's, quirks included
// (e.g. ASCII '~' is neither \p{P} nor \p{S}).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/utf8.h"
#include "tokenizer/vocab.h"
#include "util/error.h"
#include "util/printable.h"

namespace moa {
namespace {

// ---------------------------------------------------------------------------------------------
// Pre-tokenizer names -> regex lists (llama.cpp llm_tokenizer_bpe, commit c392e509).

constexpr const char* kGpt2Regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
constexpr const char* kLlama3Regex =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2Regex =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kDeepseekLetters =
    "\\s?["
    "A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
    "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}"
    "\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}"
    "\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"
    "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}"
    "\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}"
    "\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}"
    "\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
    "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}"
    "\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}"
    "\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}"
    "\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}"
    "\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}"
    "\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}"
    "\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}"
    "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"
    "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
    "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}"
    "\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}"
    "]+";
constexpr const char* kCjkRun = "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+";
constexpr const char* kNordicWords =
    " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+";
constexpr const char* kTekkenRegex =
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?"
    "((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kGpt4oRegex =
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|"
    "'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])"
    "([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

struct PreTokenizerFamily {
  std::vector<std::string_view> names;
  std::vector<std::string> regexes;
};

const std::vector<PreTokenizerFamily>& pre_tokenizer_families() {
  static const std::vector<PreTokenizerFamily> families = {
      {{"default"}, {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2Regex, "\\p{N}+", "[0-9][0-9][0-9]"}},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral", "dbrx", "smaug-bpe", "chatglm-bpe",
        "glm4"},
       {kLlama3Regex}},
      {{"deepseek-llm"},
       {"[\r\n]", kDeepseekLetters,
        "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
        "\\s+$", kCjkRun, "\\p{N}+"}},
      {{"deepseek-v3"},
       {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}"
        "\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}},
      {{"deepseek-coder"}, {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kCjkRun, "\\p{N}"}},
      {{"falcon"}, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2Regex, "[0-9][0-9][0-9]"}},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
       {"\\p{N}", kGpt2Regex}},
      {{"gpt-2", "mpt", "olmo", "jais", "phi-2", "roberta-bpe", "jina-es", "jina-de", "jina-v1-en",
        "jina-v2-es", "jina-v2-de", "jina-v2-code", "gigachat"},
       {kGpt2Regex}},
      {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"}, {kQwen2Regex}},
      {{"poro-chat", "bloom", "gpt3-finnish"}, {kNordicWords}},
      {{"viking"}, {kNordicWords, "\\p{N}"}},
      {{"tekken"}, {kTekkenRegex}},
      {{"chameleon"},
       {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
        "[\\p{P}!-/:-@\\[-`{-~]", kGpt2Regex}},
      {{"gpt-4o", "llama4"}, {kGpt4oRegex}},
  };
  return families;
}

std::string supported_names() {
  std::string names;
  for (const PreTokenizerFamily& family : pre_tokenizer_families()) {
    for (std::string_view name : family.names) {
      if (!names.empty()) names += ", ";
      names += name;
    }
  }
  return names;
}

// ---------------------------------------------------------------------------------------------
// Code points, decoded leniently as llama.cpp's unicode_cpts_from_utf8 does.

// Length of the sequence starting at `pos` if its lead and continuation bytes are well formed
// (llama.cpp's rules: overlong forms and surrogates pass), else 0.
size_t lenient_sequence_length(std::string_view text, size_t pos) {
  const uint8_t lead = static_cast<uint8_t>(text[pos]);
  size_t length = 0;
  if (lead < 0x80) {
    return 1;
  } else if ((lead & 0xE0) == 0xC0) {
    length = 2;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
  } else {
    return 0;
  }
  for (size_t i = 1; i < length; ++i) {
    if (pos + i >= text.size() || (static_cast<uint8_t>(text[pos + i]) & 0xC0) != 0x80) return 0;
  }
  return length;
}

// One invalid byte -> U+FFFD, as llama.cpp's unicode_cpts_from_utf8 does; values above U+10FFFF,
// which llama.cpp cannot re-encode, count as invalid bytes too.
std::vector<char32_t> decode_code_points(std::string_view text) {
  static constexpr std::array<uint8_t, 5> kLeadMask = {0, 0x7F, 0x1F, 0x0F, 0x07};
  std::vector<char32_t> cpts;
  cpts.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t length = lenient_sequence_length(text, pos);
    char32_t cpt = static_cast<uint8_t>(text[pos]) & kLeadMask[length];
    for (size_t i = 1; i < length; ++i) {
      cpt = (cpt << 6) | (static_cast<uint8_t>(text[pos + i]) & 0x3F);
    }
    const bool valid = length > 0 && cpt <= 0x10FFFF;
    cpts.push_back(valid ? cpt : 0xFFFD);
    pos += valid ? length : 1;
  }
  return cpts;
}

bool is_surrogate(char32_t cpt) { return cpt >= 0xD800 && cpt <= 0xDFFF; }

// Unicode's White_Space property (the set llama.cpp's unicode_set_whitespace holds).
bool is_unicode_whitespace(char32_t cpt) {
  return (cpt >= 0x09 && cpt <= 0x0D) || cpt == 0x20 || cpt == 0x85 || cpt == 0xA0 ||
         cpt == 0x1680 || (cpt >= 0x2000 && cpt <= 0x200A) || cpt == 0x2028 || cpt == 0x2029 ||
         cpt == 0x202F || cpt == 0x205F || cpt == 0x3000;
}

// ---------------------------------------------------------------------------------------------
// PCRE2 wrappers.

struct CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};
using CodePtr = std::unique_ptr<pcre2_code, CodeDeleter>;
using MatchDataPtr = std::unique_ptr<pcre2_match_data, MatchDataDeleter>;

CodePtr compile_regex(const std::string& pattern, uint32_t options, std::string_view shown) {
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &error, &error_offset, nullptr);
  if (code == nullptr) {
    std::array<PCRE2_UCHAR, 256> message{};
    pcre2_get_error_message(error, message.data(), message.size());
    fail("pre-tokenizer regex '{}': {} at offset {}", shown,
         reinterpret_cast<const char*>(message.data()), error_offset);
  }
  return CodePtr(code);
}

// Category placeholders of llama.cpp's collapsed text.
constexpr char kCollapsedOther = static_cast<char>(0xD0);
constexpr char kCollapsedNumber = static_cast<char>(0xD1);
constexpr char kCollapsedLetter = static_cast<char>(0xD2);
constexpr char kCollapsedPunctuation = static_cast<char>(0xD3);
constexpr char kCollapsedMark = static_cast<char>(0xD4);
constexpr char kCollapsedSymbol = static_cast<char>(0xD5);
constexpr char kCollapsedWhitespace = '\v';

// Maps non-ASCII code points to their placeholder using PCRE2's Unicode property tables.
class CategoryClassifier {
 public:
  CategoryClassifier()
      : code_(compile_regex("(\\p{N})|(\\p{L})|(\\p{P})|(\\p{M})|(\\p{S})",
                            PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, "category classifier")),
        match_(pcre2_match_data_create_from_pattern(code_.get(), nullptr)) {}

  char placeholder(char32_t cpt) const {
    if (is_unicode_whitespace(cpt)) return kCollapsedWhitespace;
    if (is_surrogate(cpt)) return kCollapsedOther;  // category Cs
    std::string utf8;
    utf8::append(utf8, cpt);
    const int rc = pcre2_match(code_.get(), reinterpret_cast<PCRE2_SPTR>(utf8.data()), utf8.size(),
                               0, 0, match_.get(), nullptr);
    if (rc < 2) return kCollapsedOther;
    static constexpr std::array<char, 5> kByGroup = {kCollapsedNumber, kCollapsedLetter,
                                                     kCollapsedPunctuation, kCollapsedMark,
                                                     kCollapsedSymbol};
    return kByGroup[static_cast<size_t>(rc - 2)];
  }

 private:
  CodePtr code_;
  MatchDataPtr match_;
};

// ---------------------------------------------------------------------------------------------
// llama.cpp's regex rewriting for collapsed text.

struct CategoryRewrite {
  std::string_view property;
  char placeholder;
  std::string_view ascii_members;  // the ASCII characters llama.cpp counts in the category
};

constexpr std::array<CategoryRewrite, 10> kCategoryRewrites = {{
    {"\\p{N}", kCollapsedNumber, "0-9"},
    {"\\p{L}", kCollapsedLetter, "A-Za-z"},
    {"\\p{P}", kCollapsedPunctuation, "!-#%-*,-/:-;?-@\\[-\\]_\\{\\}"},
    {"\\p{M}", kCollapsedMark, ""},
    {"\\p{S}", kCollapsedSymbol, "\\$\\+<=>\\^`\\|"},
    {"\\p{Lu}", kCollapsedLetter, "A-Za-z"},
    {"\\p{Ll}", kCollapsedLetter, "A-Za-z"},
    {"\\p{Lt}", kCollapsedLetter, "A-Za-z"},
    {"\\p{Lm}", kCollapsedLetter, "A-Za-z"},
    {"\\p{Lo}", kCollapsedLetter, "A-Za-z"},
}};

bool uses_categories(std::string_view regex) {
  return std::any_of(
      kCategoryRewrites.begin(), kCategoryRewrites.end(),
      [&](const CategoryRewrite& r) { return regex.find(r.property) != regex.npos; });
}

const CategoryRewrite* category_at(std::string_view regex, size_t i) {
  for (const CategoryRewrite& rewrite : kCategoryRewrites) {
    if (regex.substr(i, rewrite.property.size()) == rewrite.property) return &rewrite;
  }
  return nullptr;
}

// Replaces each \p{X} by a class of its placeholder byte plus llama.cpp's ASCII members (inside
// an existing [...] without the extra brackets).
std::string collapse_regex(std::string_view regex) {
  std::string out;
  bool inside_class = false;
  for (size_t i = 0; i < regex.size(); ++i) {
    const char c = regex[i];
    if (c == '[' && (i == 0 || regex[i - 1] != '\\')) {
      inside_class = true;
    } else if (inside_class && c == ']' && regex[i - 1] != '\\') {
      inside_class = false;
    } else if (const CategoryRewrite* rewrite = category_at(regex, i)) {
      if (!inside_class) out += '[';
      out += rewrite->placeholder;
      out += rewrite->ascii_members;
      if (!inside_class) out += ']';
      i += rewrite->property.size() - 1;
      continue;
    }
    out += c;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Splitting.

// The text a regex runs over, and where each code point starts in it.
struct Subject {
  std::string bytes;
  std::vector<size_t> cpt_offsets;  // one per code point, plus bytes.size()
  bool utf = false;
};

Subject collapsed_subject(const std::vector<char32_t>& cpts) {
  CategoryClassifier classifier;
  Subject subject;
  subject.bytes.reserve(cpts.size());
  for (char32_t cpt : cpts) {
    subject.bytes += cpt < 0x80 ? static_cast<char>(cpt) : classifier.placeholder(cpt);
  }
  subject.cpt_offsets.resize(cpts.size() + 1);
  for (size_t i = 0; i <= cpts.size(); ++i) subject.cpt_offsets[i] = i;
  return subject;
}

// Code points as UTF-8 with non-ASCII whitespace turned into \v (llama.cpp's std::wregex input);
// surrogates, which PCRE2 cannot hold, become a private-use character no regex here names.
Subject wide_subject(const std::vector<char32_t>& cpts) {
  Subject subject;
  subject.utf = true;
  subject.cpt_offsets.reserve(cpts.size() + 1);
  for (char32_t cpt : cpts) {
    subject.cpt_offsets.push_back(subject.bytes.size());
    if (cpt >= 0x80 && is_unicode_whitespace(cpt)) cpt = '\v';
    if (is_surrogate(cpt)) cpt = 0xE000;
    utf8::append(subject.bytes, cpt);
  }
  subject.cpt_offsets.push_back(subject.bytes.size());
  return subject;
}

size_t cpt_index_of(const Subject& subject, size_t byte_offset) {
  const auto it =
      std::lower_bound(subject.cpt_offsets.begin(), subject.cpt_offsets.end(), byte_offset);
  return static_cast<size_t>(it - subject.cpt_offsets.begin());
}

// Splits one piece [first, first + count) (code points) by `code`: every match and every gap
// between matches becomes a piece, as llama.cpp's unicode_regex_split_stl does.
void split_piece(const pcre2_code* code, pcre2_match_data* match, const Subject& subject,
                 size_t first, size_t count, std::vector<size_t>& out_lengths) {
  const size_t begin = subject.cpt_offsets[first];
  const size_t end = subject.cpt_offsets[first + count];
  const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.bytes.data() + begin);
  const size_t length = end - begin;
  size_t last_end = 0;  // bytes, relative to begin
  size_t pos = 0;
  uint32_t options = 0;
  auto emit = [&](size_t from, size_t to) {
    out_lengths.push_back(cpt_index_of(subject, begin + to) - cpt_index_of(subject, begin + from));
  };
  while (pos <= length) {
    const int rc =
        pcre2_match(code, text, length, pos, options | PCRE2_NO_UTF_CHECK, match, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) {
      if (options == 0 || pos >= length) break;
      options = 0;  // the empty match cannot be extended: step over one character
      pos = subject.cpt_offsets[cpt_index_of(subject, begin + pos) + 1] - begin;
      continue;
    }
    if (rc < 0) fail("pre-tokenizer: PCRE2 match failed with error {}", rc);
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
    if (ovector[0] > last_end) emit(last_end, ovector[0]);
    if (ovector[1] > ovector[0]) emit(ovector[0], ovector[1]);
    last_end = ovector[1];
    options = ovector[1] == ovector[0] ? (PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED) : 0;
    pos = ovector[1];
  }
  if (last_end < length) emit(last_end, length);
}

std::vector<size_t> split_all(const std::string& regex, const Subject& subject,
                              const std::vector<size_t>& lengths) {
  const uint32_t options = PCRE2_DOLLAR_ENDONLY | (subject.utf ? PCRE2_UTF : 0);
  const CodePtr code = compile_regex(regex, options, regex);
  const MatchDataPtr match(pcre2_match_data_create_from_pattern(code.get(), nullptr));
  std::vector<size_t> out;
  out.reserve(lengths.size());
  size_t first = 0;
  for (size_t count : lengths) {
    split_piece(code.get(), match.get(), subject, first, count, out);
    first += count;
  }
  return out;
}

}  // namespace

std::vector<std::string> bpe_pretokenizer_regexes(std::string_view pre_name) {
  for (const PreTokenizerFamily& family : pre_tokenizer_families()) {
    if (std::find(family.names.begin(), family.names.end(), pre_name) != family.names.end()) {
      return family.regexes;
    }
  }
  fail("tokenizer.ggml.pre '{}' is not supported (supported: {})", printable(pre_name),
       supported_names());
}

// Returns the words as UTF-8 (invalid bytes already replaced by U+FFFD, as llama.cpp does);
// bpe_encode maps their bytes to the GPT-2 alphabet.
std::vector<std::string> bpe_pretokenize(std::string_view pre_name, std::string_view text) {
  const std::vector<std::string> regexes = bpe_pretokenizer_regexes(pre_name);
  const std::vector<char32_t> cpts = decode_code_points(text);
  const bool any_categories = std::any_of(regexes.begin(), regexes.end(), uses_categories);
  const Subject collapsed = any_categories ? collapsed_subject(cpts) : Subject{};
  const bool any_wide = !std::all_of(regexes.begin(), regexes.end(), uses_categories);
  const Subject wide = any_wide ? wide_subject(cpts) : Subject{};

  std::vector<size_t> lengths = {cpts.size()};
  for (const std::string& regex : regexes) {
    lengths = uses_categories(regex) ? split_all(collapse_regex(regex), collapsed, lengths)
                                     : split_all(regex, wide, lengths);
  }

  std::vector<std::string> words;
  words.reserve(lengths.size());
  size_t first = 0;
  for (size_t count : lengths) {
    std::string word;
    for (size_t i = first; i < first + count; ++i) utf8::append(word, cpts[i]);
    words.push_back(std::move(word));
    first += count;
  }
  return words;
}

}  // namespace moa
