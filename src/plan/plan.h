// A sparse-attention plan: per layer and KV head an elastic rule (alpha, beta) giving the span of
// the head's sliding window at input length N, plus G global "sink" tokens (METHOD.md s.1).
// The plan is what the optimizer writes and the engine reads; it names the model it was made for.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moa {

inline constexpr int64_t kDefaultSinks = 64;
inline constexpr int64_t kMinSpan = 1;  // a query always sees itself

struct ElasticRule {
  double alpha = 0.0;
  double beta = 1.0;

  // S(N) = clamp(alpha + beta*N, kMinSpan, N), rounded down. Throws if alpha + beta*N is NaN or
  // negative (the rule is meaningless at that length).
  int64_t span(int64_t n) const;
  bool operator==(const ElasticRule&) const = default;
};

struct ModelIdentity {
  std::string architecture;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  std::string hash;  // GgufFile::metadata_hash(); empty matches any model of this shape
};

struct DensityBudget {
  int64_t length = 0;
  double density = 1.0;
};

// One plan of the optimizer's Pareto front, recorded in the plan it chose from (for reports).
struct ParetoPoint {
  std::vector<double> densities;  // KV density at each density_budgets length
  std::vector<double> losses;     // profiled loss at each profiled_lengths length
  double validation_loss = -1.0;  // answer cross-entropy at validation_length; < 0: not measured
  bool chosen = false;
};

struct SparsePlan {
  static constexpr int kFormatVersion = 1;
  std::string method = "moa";  // moa | uniform | dense | imported
  ModelIdentity model;
  int64_t sinks = kDefaultSinks;
  std::vector<int64_t> profiled_lengths;
  std::vector<DensityBudget> density_budgets;
  std::vector<std::vector<ElasticRule>> rules;  // [layer][kv_head]
  // Written by `moa optimize` (optional in the file): the front it picked from and the length
  // the pick was validated at (0: picked by the profiled objective).
  std::vector<ParetoPoint> pareto;
  int64_t validation_length = 0;

  const ElasticRule& rule(int64_t layer, int64_t kv_head) const { return rules[layer][kv_head]; }
};

// A plan where every head has the same window (StreamingLLM) or sees everything.
SparsePlan uniform_plan(const ModelIdentity& model, int64_t window, int64_t sinks);
SparsePlan dense_plan(const ModelIdentity& model);

// Throws moa::Error naming the first mismatch (architecture, layer/head counts, hash) between
// what a file (`what`: "plan", "profile", ...) was made for and the model.
void check_identity_matches(const ModelIdentity& made_for, const ModelIdentity& model,
                            const std::string& file, std::string_view what);
void check_plan_matches(const SparsePlan& plan, const ModelIdentity& model,
                        const std::string& plan_name);
// Throws if any rule is non-finite, has beta outside [0, 1], or a shape is inconsistent.
void validate_plan(const SparsePlan& plan, const std::string& plan_name);

// Keys a head must keep to serve length n: its sinks plus its band, min(n, G + S).
int64_t kept_keys(int64_t n, int64_t span, int64_t sinks);
// KV density at length n: mean over KV heads of kept_keys / n, sinks included, so methods
// compare at equal KV bytes (METHOD.md s.1 counts S_h(n)/n; moa keeps G sinks beside the band).
double kv_density(const SparsePlan& plan, int64_t n);
// Fraction of the causal attention matrix (n(n+1)/2 entries) the plan computes, exactly.
double causal_area_density(const SparsePlan& plan, int64_t n);
// Visible (query, key) pairs of one head over a length-n causal matrix.
int64_t visible_pairs(int64_t n, int64_t span, int64_t sinks);

}  // namespace moa
