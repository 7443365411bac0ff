// Small deterministic inputs and comparisons the engine and kernel tests share.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace moa::test {

// Threads of the engine tests (ctest runs two test processes side by side on two cores).
inline constexpr int kThreads = 2;

// n token ids spread over the vocabulary; `salt` gives another, equally deterministic sequence.
std::vector<TokenId> some_tokens(int64_t n, int64_t n_vocab, int salt = 0);

// Largest |a[i] - b[i]| over the common length.
double max_abs_diff(std::span<const float> a, std::span<const float> b);

}  // namespace moa::test
