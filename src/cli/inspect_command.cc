// `moa inspect MODEL.gguf`: what a GGUF model is and what it needs in memory, as a table or JSON.
#include <fmt/format.h>

#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "engine/model_config.h"
#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"
#include "util/checked_math.h"
#include "util/error.h"
#include "util/json_fields.h"
#include "util/printable.h"

namespace moa::cli {
namespace {

struct InspectOptions {
  std::string model_path;
  int64_t ctx = 0;
  bool json = false;
};

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return fmt::format("{:.2f} {}", bytes, units[u]);
}

std::string human_count(double n) {
  if (n >= 1e9) return fmt::format("{:.2f} B", n / 1e9);
  if (n >= 1e6) return fmt::format("{:.2f} M", n / 1e6);
  if (n >= 1e3) return fmt::format("{:.2f} K", n / 1e3);
  return fmt::format("{}", n);
}

const char* rope_scaling_name(RopeScaling s) {
  switch (s) {
    case RopeScaling::kLinear:
      return "linear";
    case RopeScaling::kLlama3:
      return "llama3";
    case RopeScaling::kYarnUnsupported:
      return "yarn";
    case RopeScaling::kNone:
      break;
  }
  return "none";
}

// Bytes of a dense K+V cache for `ctx` tokens with elements of `element_bytes`.
uint64_t kv_cache_bytes(const ModelConfig& c, int64_t ctx, int element_bytes) {
  return checked_product("--ctx", {2, c.n_layer, ctx, c.kv_dim(), element_bytes});
}

nlohmann::json describe(const gguf::GgufFile& file, const ModelConfig& c, const Tokenizer& tok,
                        int64_t ctx) {
  std::map<std::string, int> type_counts;
  for (const auto& t : file.tensors())
    ++type_counts[gguf::tensor_type_name(static_cast<uint32_t>(t.type))];
  nlohmann::json j;
  j["file"] = {{"path", file.path()},
               {"gguf_version", file.version()},
               {"bytes", file.file_size()},
               {"alignment", file.alignment()},
               {"metadata_keys", file.metadata().size()},
               {"tensors", file.tensors().size()},
               {"model_hash", file.metadata_hash()}};
  j["architecture"] = c.arch_name;
  j["name"] = c.name;
  j["n_layer"] = c.n_layer;
  j["n_embd"] = c.n_embd;
  j["n_head"] = c.n_head;
  j["n_head_kv"] = c.n_head_kv;
  j["head_dim"] = c.head_dim;
  j["n_ff"] = c.n_ff;
  j["n_vocab"] = c.n_vocab;
  j["context_length"] = c.n_ctx_train;
  j["rope"] = {{"type", rope_type_name(c.rope_type)},
               {"dimensions", c.n_rot},
               {"freq_base", c.rope_freq_base},
               {"scaling", rope_scaling_name(c.rope_scaling)},
               {"scaling_factor", c.rope_scale_factor}};
  j["rms_norm_eps"] = c.rms_eps;
  j["qkv_bias"] = c.has_qkv_bias;
  j["tied_output"] = c.tied_output;
  j["parameters"] = count_parameters(file);
  j["tensor_types"] = type_counts;
  j["tokenizer"] = {{"kind", tok.kind_name()},  {"pre", tok.pre_name()},
                    {"n_vocab", tok.n_vocab()}, {"n_merges", tok.n_merges()},
                    {"bos", tok.bos()},         {"eos", tok.eos()},
                    {"add_bos", tok.add_bos()}, {"add_eos", tok.add_eos()}};
  j["memory"] = {{"weights_bytes", weight_bytes(file)},
                 {"kv_ctx", ctx},
                 {"kv_f32_bytes", kv_cache_bytes(c, ctx, 4)},
                 {"kv_f16_bytes", kv_cache_bytes(c, ctx, 2)}};
  return j;
}

void print_table(const nlohmann::json& j) {
  auto row = [](const char* label, const std::string& value) {
    fmt::print("{:<18}{}\n", label, value);
  };
  row("file:", fmt::format("{} (GGUF v{}, {})", j["file"]["path"].get<std::string>(),
                           j["file"]["gguf_version"].get<int>(),
                           human_bytes(j["file"]["bytes"].get<double>())));
  row("architecture:", fmt::format("{}{}", j["architecture"].get<std::string>(),
                                   j["name"].get<std::string>().empty()
                                       ? ""
                                       : " (" + printable(j["name"].get<std::string>()) + ")"));
  row("layers:", std::to_string(j["n_layer"].get<int64_t>()));
  row("embedding:", std::to_string(j["n_embd"].get<int64_t>()));
  row("heads:", fmt::format("{} query, {} kv (group {}), head dim {}", j["n_head"].get<int64_t>(),
                            j["n_head_kv"].get<int64_t>(),
                            j["n_head"].get<int64_t>() / j["n_head_kv"].get<int64_t>(),
                            j["head_dim"].get<int64_t>()));
  row("feed forward:", std::to_string(j["n_ff"].get<int64_t>()));
  row("vocab:", std::to_string(j["n_vocab"].get<int64_t>()));
  row("context length:", std::to_string(j["context_length"].get<int64_t>()));
  const auto& r = j["rope"];
  row("rope:",
      fmt::format(
          "{}, {} dims, base {}, scaling {}{}", r["type"].get<std::string>(),
          r["dimensions"].get<int64_t>(), r["freq_base"].get<float>(),
          r["scaling"].get<std::string>(),
          r["scaling"] == "linear" ? fmt::format(" x{}", r["scaling_factor"].get<float>()) : ""));
  row("rms norm eps:", fmt::format("{}", j["rms_norm_eps"].get<float>()));
  row("qkv bias:", j["qkv_bias"].get<bool>() ? "yes" : "no");
  row("output:", j["tied_output"].get<bool>() ? "tied to token_embd" : "separate output.weight");
  row("parameters:", fmt::format("{} ({})", human_count(j["parameters"].get<double>()),
                                 j["parameters"].get<int64_t>()));
  std::string types;
  for (const auto& [name, count] : j["tensor_types"].items())
    types += fmt::format("{}{} x{}", types.empty() ? "" : ", ", name, count.get<int>());
  row("tensor types:", types);
  const auto& t = j["tokenizer"];
  row("tokenizer:",
      fmt::format("{}, {} tokens, {} merges, pre '{}', bos {}, eos {}, add_bos {}",
                  t["kind"].get<std::string>(), t["n_vocab"].get<int64_t>(),
                  t["n_merges"].get<int64_t>(), t["pre"].get<std::string>(), t["bos"].get<int>(),
                  t["eos"].get<int>(), t["add_bos"].get<bool>()));
  const auto& m = j["memory"];
  row("weights memory:", human_bytes(m["weights_bytes"].get<double>()));
  row("kv cache:", fmt::format("{} tokens: {} (F32), {} (F16)", m["kv_ctx"].get<int64_t>(),
                               human_bytes(m["kv_f32_bytes"].get<double>()),
                               human_bytes(m["kv_f16_bytes"].get<double>())));
}

void run_inspect(const InspectOptions& o) {
  gguf::GgufFile file = gguf::GgufFile::open(o.model_path);
  ModelConfig config = read_model_config(file);
  check_model_tensors(file, config);
  Tokenizer tokenizer = Tokenizer::from_gguf(file);
  if (o.ctx < 0) fail("--ctx: {} is negative", o.ctx);
  nlohmann::json j = describe(file, config, tokenizer, o.ctx > 0 ? o.ctx : config.n_ctx_train);
  if (o.json) {
    fmt::print("{}\n", json_fields::json_text(j, 2));
  } else {
    print_table(j);
  }
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto options = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Show a GGUF model's architecture, size, tokenizer and memory needs");
  cmd->add_option("model", options->model_path, "GGUF model file")->required();
  cmd->add_option("-c,--ctx", options->ctx,
                  "Context length for the KV-cache estimate (default: the model's)");
  cmd->add_flag("--json", options->json, "Print JSON instead of a table");
  cmd->callback([options] { run_inspect(*options); });
}

}  // namespace moa::cli
