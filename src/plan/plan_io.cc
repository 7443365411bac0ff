// JSON (de)serialisation of plans. Every field is checked; errors name the file and the field.
#include "plan/plan_io.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "util/atomic_file.h"
#include "util/error.h"
#include "util/json_fields.h"
#include "util/mapped_file.h"

namespace moa {
namespace {

using nlohmann::json;
namespace jf = json_fields;

json parse_json(const std::string& text, const std::string& name) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    fail("{}: not valid JSON (byte {}): expected a plan object", name, e.byte);
  } catch (const json::exception& e) {
    // e.g. "number overflow parsing '1e999'" (out_of_range.406), without the library's tag.
    const std::string what = e.what();
    const size_t tag_end = what.find("] ");
    fail("{}: not a valid plan: {}", name,
         tag_end == std::string::npos ? what : what.substr(tag_end + 2));
  }
}

// An integer JSON value as T, range-checked first: get<T>() would wrap 2^32 + 1 to 1.
template <typename T>
T integer(const json& v, const std::string& name, const std::string& path) {
  if (!v.is_number_integer())
    fail("{}: {}: expected an integer, got {}", name, path, v.type_name());
  const bool fits = v.is_number_unsigned()
                        ? v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max())
                        : v.get<int64_t>() >= std::numeric_limits<T>::min() &&
                              v.get<int64_t>() <= std::numeric_limits<T>::max();
  if (!fits) {
    fail("{}: {}: {} is out of range ({} .. {})", name, path, v.dump(),
         std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
  }
  return v.get<T>();
}

// Reads field `key` of `obj` as T, failing with the field path on absence or wrong type.
template <typename T>
T field(const json& obj, const std::string& key, const std::string& name, const std::string& path) {
  if (!obj.is_object() || !obj.contains(key))
    fail("{}: {}{}: required field is missing", name, path, key);
  const json& v = obj.at(key);
  if constexpr (std::is_integral_v<T>) {
    return integer<T>(v, name, path + key);
  } else {
    const bool ok = std::is_same_v<T, std::string> ? v.is_string() : v.is_number();
    if (!ok)
      fail("{}: {}{}: expected a {}, got {}", name, path, key,
           std::is_same_v<T, std::string> ? "string" : "number", v.type_name());
    return v.get<T>();
  }
}

const json& array_field(const json& obj, const std::string& key, const std::string& name) {
  if (!obj.contains(key) || !obj.at(key).is_array()) fail("{}: {}: expected an array", name, key);
  return obj.at(key);
}

std::vector<double> numbers(const json& obj, const std::string& key, const std::string& name,
                            const std::string& path) {
  std::vector<double> out;
  for (const json& v : jf::array_field(obj, key, name, path)) {
    if (!v.is_number()) fail("{}: {}{}: expected numbers, got {}", name, path, key, v.type_name());
    out.push_back(v.get<double>());
  }
  return out;
}

// The optional fields `moa optimize` adds: validation_length and the pareto front.
void read_optimizer_fields(const json& j, const std::string& name, SparsePlan& plan) {
  if (j.contains("validation_length")) {
    plan.validation_length =
        jf::integer_field(j, "validation_length", name, "", 1, int64_t{1} << 40);
  }
  if (!j.contains("pareto")) return;
  const json& front = jf::array_field(j, "pareto", name, "");
  for (size_t i = 0; i < front.size(); ++i) {
    const std::string path = fmt::format("pareto[{}].", i);
    ParetoPoint p;
    p.densities = numbers(front[i], "densities", name, path);
    p.losses = numbers(front[i], "losses", name, path);
    if (p.densities.size() != plan.density_budgets.size() ||
        p.losses.size() != plan.profiled_lengths.size()) {
      fail(
          "{}: pareto[{}]: {} densities and {} losses; expected one per budget ({}) and per "
          "profiled length ({})",
          name, i, p.densities.size(), p.losses.size(), plan.density_budgets.size(),
          plan.profiled_lengths.size());
    }
    p.chosen = jf::bool_field(front[i], "chosen", name, path);
    const json& v = jf::member(front[i], "validation_loss", name, path);
    if (!v.is_null()) p.validation_loss = jf::number_field(front[i], "validation_loss", name, path);
    plan.pareto.push_back(std::move(p));
  }
}

}  // namespace

json model_identity_to_json(const ModelIdentity& m) {
  return {{"architecture", m.architecture},
          {"n_layer", m.n_layer},
          {"n_head", m.n_head},
          {"n_head_kv", m.n_head_kv},
          {"hash", m.hash}};
}

ModelIdentity model_identity_from_json(const json& m, const std::string& file) {
  constexpr int64_t kMaxHeads = int64_t{1} << 20;
  return {json_fields::string_field(m, "architecture", file, "model."),
          json_fields::integer_field(m, "n_layer", file, "model.", 1, kMaxHeads),
          json_fields::integer_field(m, "n_head", file, "model.", 1, kMaxHeads),
          json_fields::integer_field(m, "n_head_kv", file, "model.", 1, kMaxHeads),
          json_fields::string_field(m, "hash", file, "model.")};
}

std::string plan_to_json(const SparsePlan& plan) {
  json j;
  j["format"] = "moa-plan";
  j["version"] = SparsePlan::kFormatVersion;
  j["method"] = plan.method;
  j["model"] = model_identity_to_json(plan.model);
  j["sinks"] = plan.sinks;
  j["profiled_lengths"] = plan.profiled_lengths;
  j["density_budgets"] = json::array();
  for (const DensityBudget& b : plan.density_budgets)
    j["density_budgets"].push_back({{"length", b.length}, {"density", b.density}});
  j["rules"] = json::array();
  for (const auto& layer : plan.rules) {
    json heads = json::array();
    for (const ElasticRule& r : layer) heads.push_back({{"alpha", r.alpha}, {"beta", r.beta}});
    j["rules"].push_back(heads);
  }
  if (plan.validation_length > 0) j["validation_length"] = plan.validation_length;
  for (const ParetoPoint& p : plan.pareto) {
    json point = {{"densities", p.densities}, {"losses", p.losses}, {"chosen", p.chosen}};
    point["validation_loss"] = p.validation_loss >= 0.0 ? json(p.validation_loss) : json(nullptr);
    j["pareto"].push_back(point);
  }
  return json_fields::json_text(j, 1) + "\n";
}

SparsePlan plan_from_json(const std::string& text, const std::string& name) {
  json j = parse_json(text, name);
  if (!j.is_object()) fail("{}: expected a JSON object", name);
  if (j.contains("alphas"))
    fail("{}: this is a reference-format plan: use `moa plan import`", name);
  if (field<std::string>(j, "format", name, "") != "moa-plan")
    fail("{}: format: expected \"moa-plan\"", name);
  const int64_t version = field<int64_t>(j, "version", name, "");
  if (version != SparsePlan::kFormatVersion)
    fail("{}: version: {} is not supported (supported: {})", name, version,
         SparsePlan::kFormatVersion);
  SparsePlan plan;
  plan.method = field<std::string>(j, "method", name, "");
  if (!j.contains("model")) fail("{}: model: required field is missing", name);
  const json& m = j.at("model");
  plan.model = {field<std::string>(m, "architecture", name, "model."),
                field<int64_t>(m, "n_layer", name, "model."),
                field<int64_t>(m, "n_head", name, "model."),
                field<int64_t>(m, "n_head_kv", name, "model."),
                field<std::string>(m, "hash", name, "model.")};
  plan.sinks = field<int64_t>(j, "sinks", name, "");
  for (const json& n : array_field(j, "profiled_lengths", name)) {
    plan.profiled_lengths.push_back(integer<int64_t>(n, name, "profiled_lengths[]"));
  }
  for (const json& b : array_field(j, "density_budgets", name)) {
    plan.density_budgets.push_back({field<int64_t>(b, "length", name, "density_budgets[]."),
                                    field<double>(b, "density", name, "density_budgets[].")});
  }
  const json& rules = array_field(j, "rules", name);
  for (size_t l = 0; l < rules.size(); ++l) {
    if (!rules[l].is_array()) fail("{}: rules[{}]: expected an array of heads", name, l);
    std::vector<ElasticRule> heads;
    for (size_t h = 0; h < rules[l].size(); ++h) {
      const std::string path = fmt::format("rules[{}][{}].", l, h);
      heads.push_back({field<double>(rules[l][h], "alpha", name, path),
                       field<double>(rules[l][h], "beta", name, path)});
    }
    plan.rules.push_back(std::move(heads));
  }
  read_optimizer_fields(j, name, plan);
  validate_plan(plan, name);
  return plan;
}

SparsePlan read_plan(const std::string& path) {
  keep_from_overwrite(path);  // plans are only ever inputs where they are read
  return plan_from_json(read_regular_file(path), path);
}

void write_plan(const SparsePlan& plan, const std::string& path) {
  validate_plan(plan, path);
  write_file_atomically(path, plan_to_json(plan));
}

namespace {

std::vector<std::vector<double>> matrix_field(const json& j, const std::string& key,
                                              const std::string& name) {
  std::vector<std::vector<double>> out;
  for (const json& row : array_field(j, key, name)) {
    if (!row.is_array()) fail("{}: {}: expected an array per layer", name, key);
    std::vector<double> values;
    for (const json& v : row) {
      if (!v.is_number()) fail("{}: {}: expected numbers, got {}", name, key, v.type_name());
      values.push_back(v.get<double>());
    }
    out.push_back(std::move(values));
  }
  return out;
}

ElasticRule fold_group(const std::vector<ElasticRule>& group, GqaFold fold, const std::string& name,
                       size_t layer, size_t kv_head) {
  ElasticRule widest = group.front();
  for (const ElasticRule& r : group) {
    if (fold == GqaFold::kReject && !(r == group.front())) {
      fail(
          "{}: layer {} KV head {}: its query heads have different rules (expected one rule per "
          "group unless the import folds each group to its widest rule)",
          name, layer, kv_head);
    }
    widest.alpha = std::max(widest.alpha, r.alpha);
    widest.beta = std::max(widest.beta, r.beta);
  }
  return widest;
}

}  // namespace

SparsePlan import_reference_plan(const std::string& path, const ModelIdentity& model, GqaFold fold,
                                 int64_t sinks) {
  json j = parse_json(read_regular_file(path), path);
  if (!j.is_object()) fail("{}: expected an object with \"alphas\" and \"betas\"", path);
  auto alphas = matrix_field(j, "alphas", path);
  auto betas = matrix_field(j, "betas", path);
  if (static_cast<int64_t>(alphas.size()) != model.n_layer || betas.size() != alphas.size()) {
    fail("{}: alphas/betas: {}/{} layers, the model has {}", path, alphas.size(), betas.size(),
         model.n_layer);
  }
  SparsePlan plan;
  plan.method = "imported";
  plan.model = model;
  plan.sinks = sinks;
  const size_t group = static_cast<size_t>(model.n_head / model.n_head_kv);
  for (size_t l = 0; l < alphas.size(); ++l) {
    const size_t n = alphas[l].size();
    if (n != betas[l].size() ||
        (n != static_cast<size_t>(model.n_head) && n != static_cast<size_t>(model.n_head_kv))) {
      fail("{}: layer {}: {} alphas and {} betas; expected {} (query heads) or {} (KV heads)", path,
           l, n, betas[l].size(), model.n_head, model.n_head_kv);
    }
    const size_t per_kv = n == static_cast<size_t>(model.n_head_kv) ? 1 : group;
    std::vector<ElasticRule> heads;
    for (size_t kv = 0; kv < static_cast<size_t>(model.n_head_kv); ++kv) {
      std::vector<ElasticRule> members;
      for (size_t q = kv * per_kv; q < (kv + 1) * per_kv; ++q)
        members.push_back({alphas[l][q], betas[l][q]});
      heads.push_back(fold_group(members, fold, path, l, kv));
    }
    plan.rules.push_back(std::move(heads));
  }
  validate_plan(plan, path);
  return plan;
}

}  // namespace moa
