// The whole pipeline (compress_model: calibrate on line-retrieval and passkey prompts → profile
// → optimize → validate) on the constructed planted-retrieval model, whose heads' jobs are known
// (models/planted-retrieval.heads.json): at 25% KV density the chosen plan must give the
// retrieval head (layer 2, head 0) the full span — beta 1, reaching back past every needle to
// the prompt's preamble (whose keys no answer uses, so no profile asks for them) at every length
// up to 4096, the widest head there — and every positional head at least its planted span. The
// alpha step is 8 tokens so that rules narrower than the positional heads' spans (offsets up to
// 13) are on offer and the optimizer has to refuse them. About 20 s of CPU in Release, so the
// sanitizer run (MOA_TEST_SANITIZED) skips it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "optimize/compress.h"
#include "support/assets.h"

namespace moa {
namespace {

constexpr int64_t kPreamble = 128;  // tokens of task text before the first possible needle

TEST(CompressPlanted, KeepsTheRetrievalHeadGlobalAndPositionalSpansAtQuarterDensity) {
  MOA_REQUIRE_ASSET(model_path, "models/planted-retrieval.gguf");
  MOA_REQUIRE_ASSET(heads_path, "models/planted-retrieval.heads.json");
  if (test::sanitized_run()) GTEST_SKIP() << "about 20 s in Release: too slow under the sanitizers";
  const Model model = Model::load(model_path, FileLoad::kMap);
  CompressOptions o;
  o.densities = {0.25};
  o.max_length = 4096;
  o.validation_length = 1024;
  o.profile_lengths = {256, 512};
  o.samples = 4;
  o.validation_samples = 2;
  o.calibrate.tasks = {TaskKind::kPasskey};
  o.calibrate.max_answer = 8;
  o.optimize.grid.alpha_step = 8;
  // 32 sinks (the default is 8 here): 4 passkey samples put their needles no farther than ~330
  // tokens back at 512, so rules of beta 7/8 cover every profiled needle and project to cover
  // them at 4096 too; the tighter budget at 256 is what leaves beta 1 the only such rule.
  o.sinks = 32;
  o.optimize.pareto.points = 2;
  const CompressSettings s = resolve_compress_settings(
      o, model.config(), identity_of(model.config(), model.file().metadata_hash()));
  const CompressResult r = compress_model(model, s, test::temp_dir() + "/work", 1, false, {});
  const SparsePlan& plan = r.plan;

  const std::vector<int64_t> lengths = {256, 512, 1024, 4096};
  for (int64_t n : lengths) EXPECT_LE(kv_density(plan, n), 0.25) << n;
  const nlohmann::json heads = nlohmann::json::parse(test::read_file(heads_path))["heads"];
  for (const nlohmann::json& head : heads) {
    const std::string kind = head["kind"];
    const int64_t layer = head["layer"], h = head["head"];
    const ElasticRule& rule = plan.rules[static_cast<size_t>(layer)][static_cast<size_t>(h)];
    for (int64_t n : lengths) {
      const int64_t span = rule.span(n);
      if (kind == "retrieval") {
        EXPECT_EQ(rule.beta, 1.0);
        EXPECT_GE(span, n - kPreamble) << "retrieval head at length " << n;
        for (const std::vector<ElasticRule>& layer_rules : plan.rules) {
          for (const ElasticRule& r : layer_rules) EXPECT_TRUE(n < 4096 || r.span(n) <= span);
        }
      }
      if (kind == "positional") {
        EXPECT_GE(span, head["intended_span"].get<int64_t>())
            << "layer " << layer << " head " << h << " at length " << n;
      }
    }
  }
}

}  // namespace
}  // namespace moa
