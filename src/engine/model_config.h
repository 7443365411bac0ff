// Hyper-parameters of a supported model, read from GGUF metadata (`<arch>.*` keys) and checked
// against its tensors. Everything downstream (forward pass, KV cache, plans) reads this.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "kernels/kernels.h"
#include "kv/kv_shape.h"
#include "plan/plan.h"

namespace moa {

enum class Architecture { kLlama, kQwen2 };
enum class RopeType { kNormal, kNeox };  // normal: rotate (x[2i], x[2i+1]); neox: (x[i], x[i+d/2])
enum class RopeScaling { kNone, kLinear, kYarnUnsupported, kLlama3 };

struct ModelConfig {
  Architecture arch = Architecture::kLlama;
  std::string arch_name;  // "llama" / "qwen2"
  std::string name;       // general.name, may be empty
  int64_t n_layer = 0;
  int64_t n_embd = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;  // n_embd / n_head unless attention.key_length says otherwise
  int64_t n_ff = 0;
  int64_t n_vocab = 0;
  int64_t n_ctx_train = 0;  // <arch>.context_length
  int64_t n_rot = 0;        // rope.dimension_count (defaults to head_dim)
  RopeType rope_type = RopeType::kNormal;
  float rope_freq_base = 10000.0f;
  RopeScaling rope_scaling = RopeScaling::kNone;
  float rope_scale_factor = 1.0f;        // linear: positions are divided by this
  int64_t rope_orig_ctx = 0;             // rope.scaling.original_context_length
  std::vector<float> rope_freq_factors;  // llama3: rope_freqs.weight, n_rot/2 divisors
  float rms_eps = 1e-5f;
  bool has_qkv_bias = false;  // qwen2
  bool tied_output = false;   // no output.weight: logits use token_embd.weight

  int64_t n_group() const { return n_head / n_head_kv; }  // query heads per KV head
  int64_t kv_dim() const { return n_head_kv * head_dim; }
  int64_t q_dim() const { return n_head * head_dim; }
};

// Reads and validates the config; errors name the file and key, e.g.
// "error: architecture 'gpt2' is not supported (supported: llama, qwen2)".
ModelConfig read_model_config(const gguf::GgufFile& file);

// Checks that every tensor the forward pass needs exists with the shape the config implies.
void check_model_tensors(const gguf::GgufFile& file, const ModelConfig& config);

// Parameter count (sum of all tensor elements) and bytes of all tensor data.
int64_t count_parameters(const gguf::GgufFile& file);
uint64_t weight_bytes(const gguf::GgufFile& file);

// The KV cache shape of this model for n_seq sequences of n_ctx positions stored as `type`.
KvShape kv_shape(const ModelConfig& config, int64_t n_ctx, int n_seq, kernels::KvType type);

// What a plan or profile records of the model it was made for (hash: GgufFile::metadata_hash()).
ModelIdentity identity_of(const ModelConfig& config, const std::string& hash);

const char* architecture_name(Architecture arch);
const char* rope_type_name(RopeType type);

}  // namespace moa
