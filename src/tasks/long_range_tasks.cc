// Long-range task prompts (see long_range_tasks.h). A prompt is head + items + tail, where one
// item is the needle (lines, kv) or a needle sentence is inserted between filler items
// (passkey). The item count is fitted to the token budget by measuring the whole prompt with
// the model's tokenizer a few times: token counts of joined text are not additive (merges across
// item boundaries), so an estimate alone could overshoot the budget.
#include "tasks/long_range_tasks.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <set>
#include <vector>

#include "util/error.h"
#include "util/input_error.h"

namespace moa {
namespace {

// Two words make a line name ("line ripe-harbor"); 96 x 96 distinct names cover ~9K lines.
constexpr std::array<std::string_view, 96> kAdjectives = {
    "able",   "acid",   "aged",   "airy",   "amber",  "ample", "arid",  "avid",  "bald",  "bare",
    "basic",  "bleak",  "blind",  "bold",   "brave",  "brief", "brisk", "broad", "busy",  "calm",
    "cheap",  "chief",  "civic",  "clean",  "clear",  "close", "cold",  "cool",  "coral", "crisp",
    "cruel",  "curly",  "damp",   "dark",   "dear",   "deep",  "dense", "dizzy", "dry",   "dull",
    "eager",  "early",  "easy",   "empty",  "equal",  "exact", "faint", "fair",  "false", "fancy",
    "fast",   "fierce", "final",  "firm",   "flat",   "fond",  "frail", "free",  "fresh", "giant",
    "glad",   "grand",  "great",  "green",  "grim",   "happy", "hardy", "harsh", "heavy", "hollow",
    "humble", "icy",    "ideal",  "inner",  "ivory",  "jolly", "keen",  "kind",  "large", "late",
    "lazy",   "lean",   "light",  "little", "lively", "lofty", "loud",  "loyal", "lucky", "mellow",
    "mild",   "misty",  "modest", "noble",  "odd",    "pale"};
constexpr std::array<std::string_view, 96> kNouns = {
    "acorn",  "anchor", "apple",   "arrow",  "badge",   "banner",  "barrel", "basket",  "beacon",
    "berry",  "blade",  "bottle",  "branch", "bridge",  "brook",   "bucket", "cabin",   "candle",
    "canyon", "castle", "cedar",   "chalk",  "cherry",  "circle",  "cliff",  "cloud",   "clover",
    "comet",  "copper", "cotton",  "crane",  "crown",   "daisy",   "delta",  "desert",  "dragon",
    "eagle",  "ember",  "engine",  "falcon", "feather", "fern",    "fiddle", "flame",   "forest",
    "fossil", "garden", "glacier", "goblet", "granite", "harbor",  "hazel",  "helmet",  "hollow",
    "island", "jacket", "jungle",  "kettle", "ladder",  "lantern", "lemon",  "lily",    "marble",
    "meadow", "mirror", "needle",  "nickel", "oasis",   "orchid",  "otter",  "paddle",  "pebble",
    "pepper", "pillow", "planet",  "pocket", "quartz",  "rabbit",  "raven",  "ribbon",  "river",
    "saddle", "salmon", "shadow",  "silver", "spruce",  "summit",  "temple", "thistle", "timber",
    "tunnel", "valley", "velvet",  "walnut", "willow",  "zephyr"};

constexpr std::string_view kLinesHead =
    "Below is a record of lines I want you to remember. Each line begins with 'line <line "
    "index>' and contains a '<REGISTER_CONTENT>' at the end of the line as a numerical value. "
    "For each line index, memorize its corresponding <REGISTER_CONTENT>. At the end of the "
    "record, I will ask you to retrieve the corresponding <REGISTER_CONTENT> of a certain line "
    "index. Now the record start:\n\n";
constexpr std::string_view kPasskeyHead =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize "
    "it. I will quiz you about the important information there. ";
constexpr std::string_view kPasskeyFiller =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ";
constexpr std::string_view kKeyValueHead =
    "Extract the value corresponding to the specified key in the JSON object below.\n\nJSON "
    "data:\n{";

// The items of one prompt, drawn from the rng on first use and kept, so that refitting the
// item count never changes an item already placed.
class TaskItems {
 public:
  TaskItems(TaskKind kind, std::mt19937_64& rng) : kind_(kind), rng_(&rng) {}

  const std::string& key(size_t i) {
    fill(i);
    return keys_[i];
  }
  const std::string& value(size_t i) {
    fill(i);
    return values_[i];
  }

 private:
  void fill(size_t i) {
    while (keys_.size() <= i) {
      if (kind_ == TaskKind::kKeyValue) {
        keys_.push_back(uuid());
        values_.push_back(uuid());
        continue;
      }
      if (kind_ == TaskKind::kLines && used_.size() >= kAdjectives.size() * kNouns.size()) {
        fail("line retrieval: more than {} lines requested; lower the length",
             kAdjectives.size() * kNouns.size());
      }
      std::string name;
      do {
        name = std::string(pick(kAdjectives)) + "-" + std::string(pick(kNouns));
      } while (kind_ == TaskKind::kLines && !used_.insert(name).second);
      keys_.push_back(std::move(name));
      values_.push_back(std::to_string(std::uniform_int_distribution<int>(10000, 99999)(*rng_)));
    }
  }
  template <size_t N>
  std::string_view pick(const std::array<std::string_view, N>& words) {
    return words[std::uniform_int_distribution<size_t>(0, N - 1)(*rng_)];
  }
  std::string uuid() {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string id;
    for (int i = 0; i < 32; ++i) {
      if (i == 8 || i == 12 || i == 16 || i == 20) id += '-';
      id += kHex[std::uniform_int_distribution<int>(0, 15)(*rng_)];
    }
    return id;
  }

  TaskKind kind_;
  std::mt19937_64* rng_;
  std::vector<std::string> keys_, values_;
  std::set<std::string> used_;
};

struct Layout {
  int64_t n_items = 0;
  int64_t needle = 0;
};

// Passkey inserts its needle sentence before filler `needle` (0 .. n); the others query item
// `needle` (0 .. n-1).
Layout layout_for(TaskKind kind, int64_t n_items, double depth) {
  const int64_t last = kind == TaskKind::kPasskey ? n_items : n_items - 1;
  return {n_items, std::clamp<int64_t>(std::llround(depth * static_cast<double>(last)), 0, last)};
}

std::string compose(TaskKind kind, TaskItems& items, const Layout& layout, bool answer_cue) {
  std::string text;
  if (kind == TaskKind::kLines) {
    text = kLinesHead;
    for (int64_t i = 0; i < layout.n_items; ++i) {
      const auto s = static_cast<size_t>(i);
      text += "line " + items.key(s) + ": REGISTER_CONTENT is <" + items.value(s) + ">\n";
    }
    const std::string& name = items.key(static_cast<size_t>(layout.needle));
    text += "\nNow the record is over. Tell me what is the <REGISTER_CONTENT> in line " + name +
            "? I need the number.";
    if (answer_cue) text += " Answer: line " + name + ": REGISTER_CONTENT is <";
  } else if (kind == TaskKind::kPasskey) {
    text = kPasskeyHead;
    const std::string& key = items.value(0);
    for (int64_t i = 0; i <= layout.n_items; ++i) {
      if (i == layout.needle) {
        text += "The pass key is " + key + ". Remember it. " + key + " is the pass key. ";
      }
      if (i < layout.n_items) text += kPasskeyFiller;
    }
    text += "What is the pass key?";
    if (answer_cue) text += " The pass key is";
  } else {
    text = kKeyValueHead;
    for (int64_t i = 0; i < layout.n_items; ++i) {
      const auto s = static_cast<size_t>(i);
      if (i > 0) text += ", ";
      text += "\"" + items.key(s) + "\": \"" + items.value(s) + "\"";
    }
    text += "}\n\nKey: \"" + items.key(static_cast<size_t>(layout.needle)) +
            "\"\nThe value associated with the specified key is:";
    if (answer_cue) text += " \"";
  }
  return text;
}

std::string expected_answer(TaskKind kind, TaskItems& items, const Layout& layout) {
  return kind == TaskKind::kPasskey ? items.value(0)
                                    : items.value(static_cast<size_t>(layout.needle));
}

}  // namespace

std::string_view task_kind_name(TaskKind kind) {
  switch (kind) {
    case TaskKind::kLines:
      return "lines";
    case TaskKind::kPasskey:
      return "passkey";
    case TaskKind::kKeyValue:
      return "kv";
  }
  return "?";
}

TaskKind parse_task_kind(std::string_view name) {
  for (TaskKind kind : {TaskKind::kLines, TaskKind::kPasskey, TaskKind::kKeyValue}) {
    if (name == task_kind_name(kind)) return kind;
  }
  fail_input("tasks", "task '{}' is not known (expected lines, passkey or kv)", name);
}

TaskPrompt make_task_prompt(TaskKind kind, const Tokenizer& tokenizer, const TaskOptions& options,
                            std::mt19937_64& rng) {
  if (!(options.depth <= 1.0)) fail("task depth {}: expected a value in [0, 1]", options.depth);
  const double depth =
      options.depth >= 0.0 ? options.depth : std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  TaskItems items(kind, rng);
  auto tokens_with = [&](int64_t n_items) {
    const std::string text =
        compose(kind, items, layout_for(kind, n_items, depth), options.answer_cue);
    return static_cast<int64_t>(tokenizer.encode(text, true, false).size());
  };
  constexpr int64_t kMinItems = 2, kProbeItems = 10;
  const int64_t floor_tokens = tokens_with(kMinItems);
  if (floor_tokens > options.target_tokens) {
    fail("{} task: a prompt of {} tokens cannot hold the task (it needs at least {})",
         task_kind_name(kind), options.target_tokens, floor_tokens);
  }
  const double per_item =
      std::max(1.0, static_cast<double>(tokens_with(kProbeItems) - floor_tokens) /
                        static_cast<double>(kProbeItems - kMinItems));
  // Newton-like refits on the measured count; each step moves at least one item.
  int64_t n = kMinItems + static_cast<int64_t>(
                              static_cast<double>(options.target_tokens - floor_tokens) / per_item);
  int64_t best = kMinItems;  // the largest count measured to fit
  int64_t smallest_over = -1;
  for (int iteration = 0; iteration < 32; ++iteration) {
    n = std::max(n, kMinItems);
    if (smallest_over >= 0) n = std::min(n, smallest_over - 1);
    if (n <= best) break;
    const int64_t t = tokens_with(n);
    if (t > options.target_tokens) {
      smallest_over = n;
      n -= std::max<int64_t>(1, static_cast<int64_t>(std::ceil(
                                    static_cast<double>(t - options.target_tokens) / per_item)));
    } else {
      best = n;
      n += std::max<int64_t>(
          1, static_cast<int64_t>(static_cast<double>(options.target_tokens - t) / per_item));
    }
  }
  const Layout layout = layout_for(kind, best, depth);
  TaskPrompt prompt;
  prompt.kind = kind;
  prompt.prompt = compose(kind, items, layout, options.answer_cue);
  prompt.expected = expected_answer(kind, items, layout);
  prompt.n_tokens = static_cast<int64_t>(tokenizer.encode(prompt.prompt, true, false).size());
  prompt.n_items = best;
  prompt.needle_item = layout.needle;
  const int64_t last = kind == TaskKind::kPasskey ? best : best - 1;
  prompt.depth = last > 0 ? static_cast<double>(layout.needle) / static_cast<double>(last) : 0.0;
  return prompt;
}

std::string first_number(std::string_view text) {
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  const auto begin = std::find_if(text.begin(), text.end(), digit);
  return std::string(begin, std::find_if_not(begin, text.end(), digit));
}

}  // namespace moa
