// e^x for the online softmax of attention, where x is a score minus a running maximum (x <= 0).
// Highway's Exp is accurate to about an ulp over the whole float range and costs some 25 vector
// operations; softmax needs neither. Here x is clamped to [kExpFloor, 0] and e^x = 2^n e^r with
// n = round(x / ln 2), |r| <= ln 2 / 2 (two-part ln 2, as Highway's), e^r by its degree-7 Taylor
// polynomial and 2^n added to the exponent field: 14 operations, relative error below 1.2e-7
// (tests/kernels/elementwise_test.cc checks it against std::exp in double; degree 6 reached
// 2.2e-7, enough to move an F32 model's logits past its pinned match with llama.cpp).
#pragma once

#include "hwy/highway.h"

namespace moa::kernels {

// Scores further than this below the maximum count as e^kExpFloor (~1.6e-38, a normal float):
// their weight is below float resolution next to the maximum's 1.
inline constexpr float kExpFloor = -87.0f;

template <class D>
HWY_INLINE hwy::HWY_NAMESPACE::Vec<D> exp_nonpositive(D d, hwy::HWY_NAMESPACE::Vec<D> x) {
  namespace hn = hwy::HWY_NAMESPACE;
  x = hn::Max(x, hn::Set(d, kExpFloor));
  const auto n = hn::Round(hn::Mul(x, hn::Set(d, 1.44269504088896341f)));
  auto r = hn::MulAdd(n, hn::Set(d, -0.693145751953125f), x);
  r = hn::MulAdd(n, hn::Set(d, -1.428606765330187045e-6f), r);
  auto p = hn::Set(d, 1.0f / 5040.0f);
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f / 720.0f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f / 120.0f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f / 24.0f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f / 6.0f));
  p = hn::MulAdd(p, r, hn::Set(d, 0.5f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f));
  // n >= -126 here, so p * 2^n keeps a non-negative exponent field (at worst a tiny subnormal).
  const hn::RebindToSigned<D> di;
  return hn::BitCast(d, hn::Add(hn::BitCast(di, p), hn::ShiftLeft<23>(hn::ConvertTo(di, n))));
}

}  // namespace moa::kernels
