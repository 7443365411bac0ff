// compress's defaults derived from the model and the budget: the sinks take a quarter of the
// budget at the shortest profiled length (4 .. 64 tokens) unless --sinks is given.
#include <gtest/gtest.h>

#include "optimize/compress.h"
#include "util/error.h"

namespace moa {
namespace {

CompressSettings settings_for(std::vector<double> densities, int64_t sinks = -1,
                              int64_t context = 2048) {
  ModelConfig c;
  c.arch_name = "llama";
  c.n_layer = 2, c.n_head = 4, c.n_head_kv = 2, c.head_dim = 16, c.n_embd = 64;
  c.n_ctx_train = context;
  CompressOptions o;
  o.densities = std::move(densities);
  o.sinks = sinks;
  return resolve_compress_settings(o, c, identity_of(c, "0"));
}

TEST(CompressSettings, SinksTakeAQuarterOfTheBudgetAtTheShortestLength) {
  // Context 2048: validation at 2048, profiled at 512 and 1024.
  EXPECT_EQ(settings_for({0.25}).profile_lengths, (std::vector<int64_t>{512, 1024}));
  EXPECT_EQ(settings_for({0.25}).sinks, 32);
  EXPECT_EQ(settings_for({0.5}).sinks, 64);
  EXPECT_EQ(settings_for({1.0}).sinks, 64);          // at most 64
  EXPECT_EQ(settings_for({0.4}, -1, 128).sinks, 4);  // 0.4 * 32 / 4 = 3.2: at least 4
  // One budget per length (512, 1024, 2048): the one at 512 counts.
  EXPECT_EQ(settings_for({0.2, 0.5, 0.5}).sinks, 25);
  EXPECT_EQ(settings_for({0.5}, 7).sinks, 7);  // --sinks wins
  EXPECT_THROW(settings_for({0.5}, 512), Error);
}

}  // namespace
}  // namespace moa
