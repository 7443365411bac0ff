// Plan files: moa's versioned JSON format (read/write, atomically) and import of the MoA
// reference implementation's {"alphas": [[...]], "betas": [[...]]} format.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "plan/plan.h"

namespace moa {

// The "model" object plans, calibration sets and profiles carry: architecture, head counts and
// hash (callers add their own extra fields, e.g. n_vocab). Reading checks every field.
nlohmann::json model_identity_to_json(const ModelIdentity& model);
ModelIdentity model_identity_from_json(const nlohmann::json& model, const std::string& file);

SparsePlan read_plan(const std::string& path);
void write_plan(const SparsePlan& plan, const std::string& path);
std::string plan_to_json(const SparsePlan& plan);
SparsePlan plan_from_json(const std::string& text, const std::string& name);

// How per-query-head rules of the reference format become per-KV-head rules under GQA.
enum class GqaFold {
  kReject,  // error unless all query heads of a group share one rule
  kWidest,  // elementwise max of alpha and beta: a superset of every query head's window
};

// `model` gives the head counts; rules may be per query head (folded by `fold`) or per KV head.
SparsePlan import_reference_plan(const std::string& path, const ModelIdentity& model, GqaFold fold,
                                 int64_t sinks);

}  // namespace moa
