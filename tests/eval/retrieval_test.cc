// Retrieval evaluation pieces: case files in LongChat's and the planted form (and their errors,
// naming line and field), method specs, exact scoring, accuracy by length / depth decile with
// counts and the effective context length, and generated cases at a length in model tokens.
#include "eval/retrieval.h"

#include <gtest/gtest.h>

#include "engine/forward.h"
#include "support/assets.h"
#include "util/error.h"

namespace moa {
namespace {

// Fields that do not need a tokenizer (lengths given by num_lines / n_lines).
std::vector<RetrievalCase> parse(const std::string& text, const Tokenizer& tok, std::string& unit) {
  return parse_retrieval_cases(text, "cases.jsonl", tok, " A:", unit);
}

using test::error_of;

TEST(RetrievalCases, ReadsLongChatAndPlantedForms) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = Model::load(path, FileLoad::kMap);
  std::string unit;
  const auto cases = parse(
      "{\"prompt\": \"p1\", \"expected_number\": 4711, \"num_lines\": 200, \"token_size\": 3}\n"
      "\n"
      "{\"id\": \"x\", \"prompt\": \"p2\", \"expected\": \"42\", \"n_lines\": 20, "
      "\"target_line\": 5, \"answer_prefix\": \" <\"}\n",
      model.tokenizer(), unit);
  ASSERT_EQ(cases.size(), 2u);
  EXPECT_EQ(unit, "lines");
  EXPECT_EQ(cases[0].expected, "4711");
  EXPECT_EQ(cases[0].prompt, "p1 A:");
  EXPECT_EQ(cases[0].length, 200);
  EXPECT_EQ(cases[0].id, "case-1");
  EXPECT_LT(cases[0].depth, 0.0);
  EXPECT_EQ(cases[1].prompt, "p2 <");  // the case's own prefix wins
  EXPECT_EQ(cases[1].id, "x");
  EXPECT_DOUBLE_EQ(cases[1].depth, 5.0 / 19.0);
}

TEST(RetrievalCases, ReadsTheSharedPlantedCases) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  MOA_REQUIRE_ASSET(cases_path, "data/planted/cases_passkey.jsonl");
  const Model model = Model::load(path, FileLoad::kMap);
  std::string unit;
  const auto cases =
      parse_retrieval_cases(test::read_file(cases_path), cases_path, model.tokenizer(), "", unit);
  ASSERT_EQ(cases.size(), 20u);
  EXPECT_EQ(unit, "tokens");
  EXPECT_EQ(cases[0].length, 1024);  // target_len
  EXPECT_DOUBLE_EQ(cases[0].depth, 0.05);
}

TEST(RetrievalCases, RejectsMalformedLinesNamingLineAndField) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = Model::load(path, FileLoad::kMap);
  std::string unit;
  const auto& tok = model.tokenizer();
  const std::string ok = "{\"prompt\": \"p\", \"expected\": \"1\", \"n_lines\": 2}\n";
  EXPECT_NE(error_of([&] {
              parse(ok + "{\"expected\": \"1\"}\n", tok, unit);
            }).find("cases.jsonl: line 2: prompt"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              parse(ok + "{\"prompt\": \"p\", \"expected\": [1]}\n", tok, unit);
            }).find("line 2: expected: expected a string or an integer"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              parse(ok + "{\"prompt\": \"p\"}\n", tok, unit);
            }).find("line 2: expected: missing"),
            std::string::npos);
  EXPECT_NE(error_of([&] { parse("{\"prompt\": 3,\n", tok, unit); }).find("line 1"),
            std::string::npos);
  const std::string dup = "{\"id\": \"a\", \"prompt\": \"p\", \"expected\": \"1\"}\n";
  EXPECT_NE(error_of([&] { parse(dup + dup, tok, unit); }).find("line 2: id: 'a'"),
            std::string::npos)
      << "ids must stay unique (results are keyed by them)";
  EXPECT_NE(error_of([&] { parse("\n\n", tok, unit); }).find("no cases"), std::string::npos);
}

TEST(RetrievalCases, GeneratesCasesAtTheLengthWithDepthsSpreadEvenly) {
  MOA_REQUIRE_ASSET(path, "models/stories260K.gguf");
  const Model model = Model::load(path, FileLoad::kMap);
  const auto a = make_retrieval_cases(TaskKind::kLines, model.tokenizer(), {600}, 3, 7, "");
  const auto b = make_retrieval_cases(TaskKind::kLines, model.tokenizer(), {600}, 3, 7, "");
  ASSERT_EQ(a.size(), 3u);
  EXPECT_DOUBLE_EQ(a[0].depth, 0.0);
  EXPECT_DOUBLE_EQ(a[2].depth, 1.0);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].prompt, b[i].prompt) << "same seed, same cases";
    EXPECT_EQ(a[i].length, 600);
    EXPECT_LE(model.tokenizer().encode(a[i].prompt, true, false).size(), 600u);
    EXPECT_FALSE(a[i].expected.empty());
  }
}

TEST(EvalMethods, ParsesSpecsAndRejectsUnknownOnes) {
  EXPECT_EQ(parse_eval_method("dense", 0.5, 4).attention.density, 1.0);
  const EvalMethod s = parse_eval_method("streaming", 0.25, 4);
  EXPECT_EQ(s.attention.kind, AttentionKind::kStreaming);
  EXPECT_EQ(s.attention.density, 0.25);
  const EvalMethod b = parse_eval_method("binary:p.json", 0.5, 4);
  EXPECT_EQ(b.kind, "binary");
  EXPECT_EQ(b.attention.kind, AttentionKind::kMoa);
  EXPECT_EQ(b.attention.plan_path, "p.json");
  EXPECT_NE(error_of([] { parse_eval_method("flash", 0.5, 4); }).find("method 'flash'"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_eval_method("moa", 0.5, 4); }).find("needs a plan"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_eval_method("h2o:x", 0.5, 4); }).find("takes no plan"),
            std::string::npos);
}

TEST(Scoring, ComparesTheFirstNumberOrTheStartOfAKvAnswer) {
  EXPECT_TRUE(answer_is_correct(TaskKind::kLines, "97816>", "97816"));
  EXPECT_FALSE(answer_is_correct(TaskKind::kLines, "9781>", "97816"));
  EXPECT_FALSE(answer_is_correct(TaskKind::kLines, "978160", "97816"));
  EXPECT_TRUE(answer_is_correct(TaskKind::kPasskey, " 12345. The", "12345"));
  EXPECT_TRUE(answer_is_correct(TaskKind::kKeyValue, "\"abc-12\"", "abc-12"));
  EXPECT_FALSE(answer_is_correct(TaskKind::kKeyValue, "x abc-12", "abc-12"));
}

TEST(Summary, CountsAccuracyByLengthAndDecileAndFindsTheEffectiveLength) {
  std::vector<CaseRecord> records;
  auto add = [&](const char* m, int64_t len, double depth, bool ok) {
    records.push_back({m, std::to_string(records.size()), len, len, depth, "1", "", ok});
  };
  for (int i = 0; i < 10; ++i) add("dense", 512, i / 9.0, true);
  for (int i = 0; i < 10; ++i) add("dense", 1024, i / 9.0, i != 0);  // 0.9: still effective
  for (int i = 0; i < 4; ++i) add("streaming", 512, i / 3.0, true);
  for (int i = 0; i < 4; ++i) add("streaming", 1024, i / 3.0, i == 3);
  const auto s =
      summarize_retrieval(records, {"dense", "streaming"}, 0.9,
                          [](const std::string& m, int64_t) { return m == "dense" ? 1.0 : 0.25; });
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].by_length.at(1024).correct, 9);
  EXPECT_EQ(s[0].by_length.at(1024).count, 10);
  EXPECT_EQ(s[0].effective_length, 1024);
  EXPECT_DOUBLE_EQ(s[0].effective_ratio, 1.0);
  EXPECT_EQ(s[1].effective_length, 512);
  EXPECT_DOUBLE_EQ(s[1].effective_ratio, 4.0);
  EXPECT_EQ(s[1].by_decile.at(9).count, 2);  // depth 1.0 lands in the last decile
  EXPECT_EQ(s[1].by_length_decile.at(1024).at(0).correct, 0);
  EXPECT_EQ(s[1].overall.count, 8);
  EXPECT_EQ(depth_decile(0.0), 0);
  EXPECT_EQ(depth_decile(0.95), 9);
}

}  // namespace
}  // namespace moa
