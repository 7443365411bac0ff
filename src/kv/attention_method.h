// Which attention a run uses (dense, streaming, moa, h2o) as an enum with its parameters, turned
// into a plan and the cache that serves it: dense -> KvCache; streaming -> a uniform plan
// (StreamingLLM: G sinks + the same window on every head) keeping round(D x N) keys per head,
// sinks included, at the planned length N; moa -> a plan file checked against the model. Plan
// methods get a StaticKvCache, so memory shrinks with density; h2o (no plan) gets an H2oKvCache
// keeping round(D x N) keys per head (docs/h2o.md). Errors are InputErrors tagged with the field
// ("method", "plan", "density", "sinks"); the CLI names the flag.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kv/attention_cache.h"
#include "kv/kv_shape.h"
#include "plan/plan.h"

namespace moa {

enum class AttentionKind { kDense, kStreaming, kMoa, kH2o };

// "dense", "streaming", "moa", "h2o".
std::string_view attention_kind_name(AttentionKind kind);
// The kind a name stands for; throws an InputError ("method") naming the known ones otherwise.
AttentionKind parse_attention_kind(std::string_view name);

struct AttentionMethod {
  AttentionKind kind = AttentionKind::kDense;
  std::string plan_path;          // a plan file; implies moa
  double density = 1.0;           // streaming, h2o: KV density (sinks included) at the planned N
  int64_t sinks = kDefaultSinks;  // streaming: sink tokens G
};

// Throws a one-line InputError for a density outside (0, 1], streaming sinks that are negative
// or beyond the context n_ctx, moa without a plan, or a plan with another method. Call it before
// method_plan.
void check_attention_method(const AttentionMethod& m, int64_t n_ctx);

// Streaming's window at n_ctx: round(D x N) kept keys (at least 1) less the G sinks. Throws when
// the sinks fill the whole density.
int64_t streaming_window(const AttentionMethod& m, int64_t n_ctx);

// The plan the method stands for (none for dense and h2o) for sequences of n_ctx tokens (spans are
// S_h(n_ctx)); plan files are read and checked against `model` (layer/head counts, hash) and
// must give valid spans at n_ctx.
std::optional<SparsePlan> method_plan(const AttentionMethod& m, const ModelIdentity& model,
                                      int64_t n_ctx);

// Keys kept per KV head over n, averaged over heads, sinks included: 1 for dense,
// kv_density(plan, n) for a plan, the budget / n for h2o.
double method_kv_density(const AttentionMethod& m, const std::optional<SparsePlan>& plan,
                         int64_t n);

// "dense", "streaming (window W, G sinks)" (W at n_ctx), "moa (PLAN)" or "h2o (density D)".
std::string method_label(const AttentionMethod& m, int64_t n_ctx);

// The cache for shape.n_seq sequences of shape.n_ctx tokens: KvCache for dense, H2oKvCache for
// h2o, StaticKvCache for a plan, taking prefill chunks of at most `prefill_chunk` tokens.
std::unique_ptr<AttentionCache> make_attention_cache(const KvShape& shape, const AttentionMethod& m,
                                                     const std::optional<SparsePlan>& plan,
                                                     int64_t prefill_chunk);

}  // namespace moa
