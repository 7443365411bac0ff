// What `moa bench` rows stand for (speed itself is never asserted): each row's plan and cache are
// sized for its own N = depth + test tokens, and decode rows count the K/V bytes a step attends
// (dense: every position; static plan: sinks + span; H2O: its kept keys), not the allocation.
#include <gtest/gtest.h>

#include "eval/throughput.h"
#include "kv/static_kv_cache.h"
#include "support/assets.h"
#include "util/input_error.h"

namespace moa {
namespace {

ModelConfig tiny_config() {
  ModelConfig c;
  c.arch_name = "llama";
  c.n_layer = 2, c.n_head = 4, c.n_head_kv = 2, c.head_dim = 4;
  return c;
}

AttentionMethod method_named(const std::string& name, double density) {
  AttentionMethod m;
  m.kind = parse_attention_kind(name);
  m.density = density;
  m.sinks = 4;
  return m;
}

// 2 layers x 2 KV heads = 4 heads; one F16 key + value of head_dim 4 = 16 bytes.
TEST(DecodeKvReads, DenseStepReadsEveryPosition) {
  const ModelConfig c = tiny_config();
  const DecodeKvReads reads(c, AttentionMethod{}, std::nullopt, 20, kernels::KvType::kF16);
  EXPECT_EQ(reads.bytes_at(9), 10u * 4 * 16);
  EXPECT_EQ(reads.bytes_at(19), 20u * 4 * 16);
  const DecodeKvReads f32(c, AttentionMethod{}, std::nullopt, 20, kernels::KvType::kF32);
  EXPECT_EQ(f32.bytes_at(0), 1u * 4 * 32);
}

TEST(DecodeKvReads, StaticPlanStepReadsSinksPlusSpan) {
  const ModelConfig c = tiny_config();
  const SparsePlan plan = uniform_plan(identity_of(c, ""), /*window=*/4, /*sinks=*/2);
  const DecodeKvReads reads(c, method_named("streaming", 0.5), plan, 20, kernels::KvType::kF16);
  EXPECT_EQ(reads.bytes_at(3), 4u * 4 * 16);  // positions 0..3: all visible
  EXPECT_EQ(reads.bytes_at(9), 6u * 4 * 16);  // 2 sinks + a span of 4
  // Steps at positions 4..7 attend 5, 6, 6, 6 keys per head.
  EXPECT_DOUBLE_EQ(reads.mean_bytes(4, 4), 5.75 * 4 * 16);
}

TEST(DecodeKvReads, H2oStepReadsKeptKeysAndTheNewOne) {
  const ModelConfig c = tiny_config();
  // Budget round(0.5 x 20) = 10 kept keys; a step attends them plus its own.
  const DecodeKvReads reads(c, method_named("h2o", 0.5), std::nullopt, 20, kernels::KvType::kF16);
  EXPECT_EQ(reads.bytes_at(9), 10u * 4 * 16);
  EXPECT_EQ(reads.bytes_at(15), 11u * 4 * 16);
}

// A run with two depths: the shallow rows are planned and sized for their own N, not the deep
// one's, and their bytes per step are the weights plus what DecodeKvReads counts at that N.
TEST(MeasureThroughput, PlansEveryDepthForItsOwnLength) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = Model::load(path);
  const ModelConfig& c = model.config();
  ThroughputConfig cfg;
  cfg.n_prompt = 0;
  cfg.n_gen = 4;
  cfg.repeats = 1;
  cfg.depths = {32, 256};
  cfg.methods = {AttentionMethod{}, method_named("streaming", 0.5), method_named("h2o", 0.5)};
  const auto results = measure_throughput(model, cfg, [](const std::string&) {});
  ASSERT_EQ(results.size(), 6u);
  const ModelIdentity id = identity_of(c, model.file().metadata_hash());
  const auto head_keys = static_cast<double>(c.n_layer * c.n_head_kv);
  const double key_value_bytes = 2.0 * 2.0 * static_cast<double>(c.head_dim);  // F16 K and V
  for (size_t i = 0; i < results.size(); ++i) {
    const ThroughputResult& r = results[i];
    const AttentionMethod& m = cfg.methods[i / 2];
    const int64_t n = r.depth + cfg.n_gen;
    EXPECT_EQ(r.n_ctx, n);
    const auto plan = method_plan(m, id, n);
    EXPECT_EQ(r.method, method_label(m, n));
    EXPECT_EQ(
        r.kv_cache_bytes,
        make_attention_cache(kv_shape(c, n, 1, cfg.kv_type), m, plan, kDefaultRingChunk)->bytes());
    const double kv_read = DecodeKvReads(c, m, plan, n, cfg.kv_type).mean_bytes(r.depth, 4);
    EXPECT_DOUBLE_EQ(r.kv_bytes_read_per_step, kv_read);
    EXPECT_NEAR(r.bytes_per_step - kv_read,
                results[0].bytes_per_step - results[0].kv_bytes_read_per_step,
                1e-6);  // the same weight bytes in every row
  }
  // Dense at depth 32: steps at positions 32..35 attend 33..36 keys, 34.5 on average.
  EXPECT_DOUBLE_EQ(results[0].kv_bytes_read_per_step, 34.5 * head_keys * key_value_bytes);
  // The shallow streaming row runs a window for N = 36, smaller than the deep row's.
  EXPECT_NE(results[2].method, results[3].method);
  EXPECT_LT(results[2].kv_cache_bytes, results[3].kv_cache_bytes);
  EXPECT_LT(results[2].kv_bytes_read_per_step, results[0].kv_bytes_read_per_step);
  EXPECT_LT(results[4].kv_cache_bytes, results[5].kv_cache_bytes);
}

// A method that cannot be planned at one row's N fails before any row is timed: 4 sinks leave
// no window at density 0.5 and N = 8 (depth 0 + 8 decode steps), though they do at depth 256.
TEST(MeasureThroughput, RejectsAnUnplannableRowBeforeTimingAny) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = Model::load(path);
  ThroughputConfig cfg;
  cfg.n_prompt = 0;
  cfg.n_gen = 8;
  cfg.repeats = 1;
  cfg.depths = {256, 0};
  cfg.methods = {AttentionMethod{}, method_named("streaming", 0.5)};
  std::vector<std::string> timed;
  const auto record = [&](const std::string& line) { timed.push_back(line); };
  EXPECT_THROW(measure_throughput(model, cfg, record), InputError);
  EXPECT_TRUE(timed.empty()) << "first row timed before the error: " << timed.front();
}

}  // namespace
}  // namespace moa
