// Where `moa bench` and `moa profile bench` get their model: a GGUF file (-m) or a random-weight
// model with the shape of a real one (--random, --random-type), built once into the system temp
// folder, for contexts and sizes no shared model reaches.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <utility>

#include "cli/commands.h"
#include "engine/random_model.h"
#include "util/error.h"

namespace moa::cli {

RandomModelSpec random_shape(const std::string& name) {
  RandomModelSpec s;
  s.n_ctx = 131072;
  if (name == "llama-1b") {  // TinyLlama-1.1B
    s.n_layer = 22, s.n_embd = 2048, s.n_head = 32, s.n_head_kv = 4, s.n_ff = 5632,
    s.n_vocab = 32000;
  } else if (name == "qwen2-0.5b") {
    s.arch = Architecture::kQwen2;
    s.n_layer = 24, s.n_embd = 896, s.n_head = 14, s.n_head_kv = 2, s.n_ff = 4864,
    s.n_vocab = 151936;
    s.tied_output = true;
  } else if (name == "small") {  // quick runs: 8 layers, 512 wide, head dim 64
    s.n_layer = 8, s.n_embd = 512, s.n_head = 8, s.n_head_kv = 2, s.n_ff = 1536, s.n_vocab = 8192;
  } else {
    fail("--random: unknown shape '{}' (known: small, llama-1b, qwen2-0.5b)", name);
  }
  return s;
}

gguf::TensorType parse_weight_type(const std::string& name) {
  static const std::pair<const char*, gguf::TensorType> kTypes[] = {
      {"f32", gguf::TensorType::kF32},   {"f16", gguf::TensorType::kF16},
      {"bf16", gguf::TensorType::kBF16}, {"q8_0", gguf::TensorType::kQ8_0},
      {"q5_0", gguf::TensorType::kQ5_0}, {"q4_0", gguf::TensorType::kQ4_0},
      {"q6_k", gguf::TensorType::kQ6_K}, {"q5_k", gguf::TensorType::kQ5_K},
      {"q4_k", gguf::TensorType::kQ4_K}};
  for (const auto& [n, t] : kTypes) {
    if (name == n) return t;
  }
  fail(
      "--random-type: unknown type '{}' (known: f32, f16, bf16, q8_0, q5_0, q4_0, q6_k, q5_k, "
      "q4_k)",
      name);
}

void add_model_source_options(CLI::App& cmd, ModelSource& source) {
  auto* model = cmd.add_option("-m,--model", source.model_path, "GGUF model file");
  cmd.add_option("--random", source.random_shape,
                 "Use a random-weight model of this shape: small, llama-1b, qwen2-0.5b")
      ->excludes(model);
  cmd.add_option("--random-type", source.random_type, "Weight type of the random model")
      ->capture_default_str();
}

std::string model_source_path(const ModelSource& source) {
  if (source.model_path.empty() == source.random_shape.empty())
    fail("give a model with -m or a shape with --random, not both or neither");
  if (!source.model_path.empty()) return source.model_path;
  RandomModelSpec spec = random_shape(source.random_shape);
  spec.weight_type = parse_weight_type(source.random_type);
  if (source.n_layer < 0) fail("--layers: {} is negative", source.n_layer);
  if (source.n_layer > 0) spec.n_layer = source.n_layer;
  const auto path = std::filesystem::temp_directory_path() /
                    fmt::format("moa-bench-{}-{}-{}l.gguf", source.random_shape, source.random_type,
                                spec.n_layer);
  if (!std::filesystem::exists(path)) {
    spdlog::info("building random {} model ({}, {} layers) at {}", source.random_shape,
                 source.random_type, spec.n_layer, path.string());
    write_random_model(spec, path.string());
  }
  return path.string();
}

}  // namespace moa::cli
