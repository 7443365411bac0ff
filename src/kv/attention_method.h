// Which attention a run uses, as the CLI names it (`--method dense|streaming|moa|h2o`, `--plan`,
// `--density`, `--sinks`), turned into a plan and the cache that serves it: dense -> KvCache;
// streaming -> a uniform plan (StreamingLLM: G sinks + the same window on every head) keeping
// round(D x N) keys per head, sinks included, at the planned length N; moa -> a plan file
// checked against the model. Plan methods get a StaticKvCache, so memory shrinks with density; h2o
// (no plan) gets an H2oKvCache keeping round(D x N) keys per head (docs/h2o.md).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "engine/model_config.h"
#include "kernels/kernels.h"
#include "kv/attention_cache.h"
#include "plan/plan.h"

namespace moa {

struct AttentionMethod {
  std::string method = "dense";   // dense | streaming | moa | h2o (moa needs plan_path)
  std::string plan_path;          // a plan file; implies moa
  double density = 1.0;           // streaming, h2o: KV density (sinks included) at the planned N
  int64_t sinks = kDefaultSinks;  // streaming: sink tokens G
};

// Throws a one-line error for an unknown method, a density outside (0, 1], streaming sinks
// that are negative or beyond the context n_ctx, moa without a plan, or a plan with another
// method. Call it before method_plan.
void check_attention_method(const AttentionMethod& m, int64_t n_ctx);

// The plan the method stands for (none for dense and h2o) for sequences of n_ctx tokens (spans are
// S_h(n_ctx)); plan files are read and checked against `model` (layer/head counts, hash) and
// must give valid spans at n_ctx. Throws when streaming's sinks fill its whole density.
std::optional<SparsePlan> method_plan(const AttentionMethod& m, const ModelIdentity& model,
                                      int64_t n_ctx);

// Keys kept per KV head over n, averaged over heads, sinks included: 1 for dense,
// kv_density(plan, n) for a plan, the budget / n for h2o.
double method_kv_density(const AttentionMethod& m, const std::optional<SparsePlan>& plan,
                         int64_t n);

// "dense", "streaming (window W, G sinks)", "moa (PLAN)" or "h2o (density D)", for reports.
std::string method_label(const AttentionMethod& m, const std::optional<SparsePlan>& plan);

// The cache for n_seq sequences of n_ctx tokens: KvCache for dense, H2oKvCache for h2o,
// StaticKvCache for a plan, taking prefill chunks of at most `prefill_chunk` tokens.
std::unique_ptr<AttentionCache> make_attention_cache(const ModelConfig& config,
                                                     const AttentionMethod& m,
                                                     const std::optional<SparsePlan>& plan,
                                                     int64_t n_ctx, int n_seq, kernels::KvType type,
                                                     int64_t prefill_chunk);

}  // namespace moa
