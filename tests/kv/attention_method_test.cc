// Attention-method selection: kind names both ways, the label computed from the method's own
// parameters (the streaming window at N, not a plan's first rule), and errors that name the
// field and value (the CLI adds the flag) rather than a flag.
#include "kv/attention_method.h"

#include <gtest/gtest.h>

#include <string>

#include "util/input_error.h"

namespace moa {
namespace {

// The field an InputError names, or "" when `f` throws nothing of the kind.
template <class F>
std::string failing_field(F f) {
  try {
    f();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).find("--"), std::string::npos) << e.what();
    return e.field();
  }
  return "";
}

TEST(AttentionMethod, KindsParseAndPrintBothWays) {
  for (AttentionKind kind : {AttentionKind::kDense, AttentionKind::kStreaming, AttentionKind::kMoa,
                             AttentionKind::kH2o}) {
    EXPECT_EQ(parse_attention_kind(attention_kind_name(kind)), kind);
  }
  EXPECT_EQ(failing_field([] { parse_attention_kind("h3o"); }), "method");
}

TEST(AttentionMethod, LabelsComeFromTheMethodsParameters) {
  AttentionMethod streaming{AttentionKind::kStreaming, "", 0.25, 4};
  // round(0.25 x 1000) = 250 keys per head, 4 of them sinks.
  EXPECT_EQ(streaming_window(streaming, 1000), 246);
  EXPECT_EQ(method_label(streaming, 1000), "streaming (window 246, 4 sinks)");
  const ModelIdentity model{"llama", 2, 4, 2, ""};
  const SparsePlan plan = *method_plan(streaming, model, 1000);
  EXPECT_EQ(plan.sinks, 4);
  EXPECT_EQ(plan.rules[1][1].span(1000), 246);
  EXPECT_EQ(method_label(AttentionMethod{}, 1000), "dense");
  EXPECT_EQ(method_label({AttentionKind::kH2o, "", 0.5, 64}, 1000), "h2o (density 0.5)");
  EXPECT_EQ(method_label({AttentionKind::kMoa, "p.json", 1.0, 64}, 1000), "moa (p.json)");
  EXPECT_FALSE(method_plan(AttentionMethod{}, model, 1000).has_value());
}

TEST(AttentionMethod, ErrorsNameTheFieldNotAFlag) {
  EXPECT_EQ(failing_field([] {
              check_attention_method({AttentionKind::kH2o, "", 1.5, 0}, 100);
            }),
            "density");
  EXPECT_EQ(failing_field([] {
              check_attention_method({AttentionKind::kMoa, "", 1.0, 0}, 100);
            }),
            "plan");
  EXPECT_EQ(failing_field([] {
              check_attention_method({AttentionKind::kH2o, "p.json", 1.0, 0}, 100);
            }),
            "plan");
  EXPECT_EQ(failing_field([] {
              check_attention_method({AttentionKind::kStreaming, "", 0.5, 101}, 100);
            }),
            "sinks");
  EXPECT_EQ(failing_field([] {
              streaming_window({AttentionKind::kStreaming, "", 0.1, 64}, 100);
            }),
            "sinks");
  EXPECT_EQ(failing_field([] {
              check_attention_method({AttentionKind::kStreaming, "", 0.5, 4}, 100);
            }),
            "");
}

TEST(AttentionMethod, CachesFollowTheKind) {
  const KvShape shape{2, 2, 8, 64, 1, kernels::KvType::kF32};
  const ModelIdentity model{"llama", 2, 4, 2, ""};
  const AttentionMethod streaming{AttentionKind::kStreaming, "", 0.5, 4};
  const auto dense = make_attention_cache(shape, AttentionMethod{}, std::nullopt, 16);
  const auto rings = make_attention_cache(shape, streaming, method_plan(streaming, model, 64), 16);
  const auto h2o =
      make_attention_cache(shape, {AttentionKind::kH2o, "", 0.25, 0}, std::nullopt, 16);
  EXPECT_EQ(dense->max_chunk(), 64);
  EXPECT_EQ(rings->max_chunk(), 16);
  EXPECT_LT(rings->bytes(), dense->bytes());
  EXPECT_LT(h2o->bytes(), dense->bytes());
  EXPECT_TRUE(dense->rewind(0, 0));
  EXPECT_TRUE(h2o->rewind(0, 0));
}

}  // namespace
}  // namespace moa
