// Runs llama.cpp's tokenizer test cases (a .inp/.out pair, tests/test-tokenizer-0 format) through a
// Tokenizer; shared by the SentencePiece and BPE golden tests, which differ only in how they
// print a mismatch.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "support/assets.h"
#include "tokenizer/tokenizer.h"

namespace moa::test {

using MismatchReporter =
    std::function<void(size_t index, const std::string& input, const std::vector<TokenId>& expected,
                       const std::vector<TokenId>& got)>;

// Encodes every input with add_special = parse_special = false; returns the number of cases
// whose ids differ (each reported), or -1 when the files do not hold 46 matching cases.
inline int count_vocab_case_failures(const Tokenizer& tokenizer, const std::string& inp_path,
                                     const std::string& out_path, const MismatchReporter& report) {
  const std::vector<std::string> inputs = split_vocab_test_inputs(read_file(inp_path));
  const std::vector<std::vector<TokenId>> expected = parse_expected_ids(read_file(out_path));
  EXPECT_EQ(inputs.size(), 46u);
  EXPECT_EQ(expected.size(), inputs.size());
  if (inputs.size() != 46u || expected.size() != inputs.size()) return -1;
  int failures = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::vector<TokenId> got = tokenizer.encode(inputs[i], false, false);
    if (got == expected[i]) continue;
    ++failures;
    report(i, inputs[i], expected[i], got);
  }
  return failures;
}

}  // namespace moa::test
