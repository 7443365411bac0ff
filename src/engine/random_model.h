// Builds GGUF models with random weights for any supported architecture and weight type, with a
// small SentencePiece vocabulary. Tests use them to run everywhere; `moa bench` uses them for
// realistic shapes when no real model is long enough.
#pragma once

#include <cstdint>
#include <string>

#include "engine/model_config.h"
#include "gguf/gguf_writer.h"

namespace moa {

struct RandomModelSpec {
  Architecture arch = Architecture::kLlama;
  gguf::TensorType weight_type = gguf::TensorType::kF32;  // every 2-D weight; norms stay F32
  int64_t n_layer = 2;
  int64_t n_embd = 64;
  int64_t n_head = 4;
  int64_t n_head_kv = 2;
  int64_t n_ff = 96;
  int64_t n_vocab = 320;  // at least 259 + a few pieces
  int64_t n_ctx = 1024;
  float rope_freq_base = 10000.0f;
  float rope_linear_factor = 1.0f;  // != 1 writes linear rope scaling
  bool llama3_rope_freqs = false;   // writes rope_freqs.weight
  bool tied_output = false;
  uint64_t seed = 1;
};

// Throws moa::Error if a dimension does not fit the weight type's block size.
gguf::GgufWriter build_random_model(const RandomModelSpec& spec);
void write_random_model(const RandomModelSpec& spec, const std::string& path);

}  // namespace moa
