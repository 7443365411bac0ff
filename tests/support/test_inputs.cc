// Small deterministic inputs and comparisons the engine and kernel tests share.
#include "support/test_inputs.h"

#include <algorithm>
#include <cmath>

namespace moa::test {

std::vector<TokenId> some_tokens(int64_t n, int64_t n_vocab, int salt) {
  std::vector<TokenId> ids;
  ids.reserve(static_cast<size_t>(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) {
    ids.push_back(static_cast<TokenId>((i * 37 + 11 + salt * 101) % n_vocab));
  }
  return ids;
}

double max_abs_diff(std::span<const float> a, std::span<const float> b) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  }
  return worst;
}

}  // namespace moa::test
