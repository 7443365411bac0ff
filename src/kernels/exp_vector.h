// e^x for the online softmax of attention, where x is a score minus a running maximum (x <= 0).
// Highway's Exp is accurate to about an ulp over the whole float range and costs some 25 vector
// operations; softmax needs neither. Here x is clamped to [kExpFloor, 0] and e^x = 2^n e^r with
// n = round(x / ln 2), |r| <= ln 2 / 2, and e^r by Highway's own reduction and polynomial; only
// the range checks go, and 2^n is added to the exponent field instead of two multiplies: 16
// operations. The result is Highway's (tests/kernels/elementwise_test.cc checks it against
// std::exp in double). A degree-6 Taylor e^r (2.2e-7 relative error) had moved an F32 model's
// logits past their pinned match with llama.cpp.
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
  // e^r - 1 = r + r^2 (k0 + k1 r + ... + k5 r^5) with Highway's minimax coefficients, evaluated
  // as its Exp does (Estrin's scheme), so the two agree wherever both round n alike.
  const auto r2 = hn::Mul(r, r), r4 = hn::Mul(r2, r2);
  const auto k01 = hn::MulAdd(hn::Set(d, 0.166666671633720397949219f), r, hn::Set(d, 0.5f));
  const auto k23 = hn::MulAdd(hn::Set(d, 0.00833336077630519866943359f), r,
                              hn::Set(d, 0.0416664853692054748535156f));
  const auto k45 = hn::MulAdd(hn::Set(d, 0.000198527617612853646278381f), r,
                              hn::Set(d, 0.00139304355252534151077271f));
  const auto poly = hn::MulAdd(r4, k45, hn::MulAdd(r2, k23, k01));
  const auto p = hn::Add(hn::MulAdd(poly, r2, r), hn::Set(d, 1.0f));
  // n >= -126 here, so p * 2^n keeps a non-negative exponent field (at worst a tiny subnormal).
  const hn::RebindToSigned<D> di;
  return hn::BitCast(d, hn::Add(hn::BitCast(di, p), hn::ShiftLeft<23>(hn::ConvertTo(di, n))));
}

}  // namespace moa::kernels
