// The validation pick's measure (METHOD.md s.4): a plan's answer cross-entropy on calibration
// samples of a length no profile saw, run with the real sparse engine (a StaticKvCache built
// from the plan at that length): prompt prefilled in chunks, answer teacher-forced, loss on the
// answer tokens only, as profiling scores them.
#pragma once

#include <cstdint>
#include <vector>

#include "calibrate/calibration_set.h"
#include "engine/forward.h"
#include "plan/plan.h"

namespace moa {

// Mean over samples of the mean negative log-likelihood (nats) of their answer tokens, with
// spans at `length`. Samples must fit in `length` tokens and have an answer.
double plan_answer_loss(const Model& model, const SparsePlan& plan,
                        const std::vector<const CalibrationSample*>& samples, int64_t length,
                        int n_threads);

// The calibration samples made for `length` (throws naming the set's lengths when none).
std::vector<const CalibrationSample*> samples_at(const CalibrationSet& set, int64_t length,
                                                 const std::string& file);

// The longest calibration length above every profiled length; 0 when there is none.
int64_t default_validation_length(const CalibrationSet& set, const std::vector<int64_t>& profiled);

}  // namespace moa
