// `moa plan show|uniform|dense|import`: inspect plans and make the baseline ones (StreamingLLM
// windows, dense) or convert the reference implementation's format.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "engine/model_config.h"
#include "gguf/gguf_file.h"
#include "plan/plan_io.h"
#include "util/error.h"
#include "util/json_fields.h"
#include "util/printable.h"

namespace moa::cli {
namespace {

struct PlanOptions {
  std::string plan_path;
  std::string model_path;
  std::string output;
  std::vector<int64_t> lengths = {1024, 4096, 16384};
  int64_t window = 0;
  int64_t sinks = kDefaultSinks;
  std::string gqa = "reject";
  bool json = false;
};

ModelIdentity model_identity(const std::string& path) {
  gguf::GgufFile file = gguf::GgufFile::open(path);
  return identity_of(read_model_config(file), file.metadata_hash());
}

void check_lengths(const std::vector<int64_t>& lengths) {
  for (int64_t n : lengths) {
    if (n < 1) fail("--lengths: {} must be a positive token count", n);
  }
}

nlohmann::json describe_plan(const SparsePlan& plan, const std::vector<int64_t>& lengths) {
  nlohmann::json j;
  j["method"] = plan.method;
  j["sinks"] = plan.sinks;
  j["model"] = {{"architecture", plan.model.architecture},
                {"n_layer", plan.model.n_layer},
                {"n_head_kv", plan.model.n_head_kv},
                {"hash", plan.model.hash}};
  j["lengths"] = lengths;
  for (int64_t n : lengths) {
    j["kv_density"].push_back(kv_density(plan, n));
    j["causal_density"].push_back(causal_area_density(plan, n));
  }
  for (size_t l = 0; l < plan.rules.size(); ++l) {
    for (size_t h = 0; h < plan.rules[l].size(); ++h) {
      const ElasticRule& r = plan.rules[l][h];
      nlohmann::json spans = nlohmann::json::array();
      for (int64_t n : lengths) spans.push_back(r.span(n));
      j["heads"].push_back(
          {{"layer", l}, {"kv_head", h}, {"alpha", r.alpha}, {"beta", r.beta}, {"spans", spans}});
    }
  }
  return j;
}

void print_plan_table(const nlohmann::json& j) {
  // Strings from the plan file are escaped: a table is for a terminal.
  fmt::print("method {}, sinks {}, model {} ({} layers x {} KV heads, hash {})\n",
             printable(j["method"].get<std::string>()), j["sinks"].get<int64_t>(),
             printable(j["model"]["architecture"].get<std::string>()),
             j["model"]["n_layer"].get<int64_t>(), j["model"]["n_head_kv"].get<int64_t>(),
             printable(j["model"]["hash"].get<std::string>()));
  std::string header = fmt::format("{:>5} {:>4} {:>10} {:>7}", "layer", "head", "alpha", "beta");
  for (const auto& n : j["lengths"])
    header += fmt::format(" {:>12}", fmt::format("span@{}", n.get<int64_t>()));
  fmt::print("{}\n", header);
  for (const auto& h : j["heads"]) {
    std::string line =
        fmt::format("{:>5} {:>4} {:>10.1f} {:>7.4f}", h["layer"].get<int64_t>(),
                    h["kv_head"].get<int64_t>(), h["alpha"].get<double>(), h["beta"].get<double>());
    for (const auto& s : h["spans"]) line += fmt::format(" {:>12}", s.get<int64_t>());
    fmt::print("{}\n", line);
  }
  std::string kv = fmt::format("{:<28}", "KV density (sinks included)"),
              area = fmt::format("{:<28}", "causal-area density");
  for (size_t i = 0; i < j["lengths"].size(); ++i) {
    kv += fmt::format(" {:>12.4f}", j["kv_density"][i].get<double>());
    area += fmt::format(" {:>12.4f}", j["causal_density"][i].get<double>());
  }
  fmt::print("{}\n{}\n", kv, area);
}

// The spans as a layer x KV-head grid at one length: the plan's shape at a glance.
void print_span_grid(const SparsePlan& plan, int64_t n) {
  const int64_t heads = plan.model.n_head_kv;
  fmt::print("\nspans at length {} (layer x KV head; {} = all)\n{:>5}", n, n, "layer");
  for (int64_t h = 0; h < heads; ++h) fmt::print(" {:>6}", fmt::format("kv{}", h));
  fmt::print("\n");
  for (size_t l = 0; l < plan.rules.size(); ++l) {
    fmt::print("{:>5}", l);
    for (const ElasticRule& r : plan.rules[l]) fmt::print(" {:>6}", r.span(n));
    fmt::print("\n");
  }
}

void show(const PlanOptions& o) {
  check_lengths(o.lengths);
  SparsePlan plan = read_plan(o.plan_path);
  if (!o.model_path.empty()) check_plan_matches(plan, model_identity(o.model_path), o.plan_path);
  nlohmann::json j = describe_plan(plan, o.lengths);
  if (o.json) {
    fmt::print("{}\n", json_fields::json_text(j, 1));
  } else {
    print_plan_table(j);
    if (!o.lengths.empty()) print_span_grid(plan, o.lengths.back());
  }
}

void save(const SparsePlan& plan, const std::string& path) {
  write_plan(plan, path);
  fmt::print(stderr, "wrote {} ({} plan, {} layers x {} KV heads)\n", path, plan.method,
             plan.rules.size(), plan.model.n_head_kv);
}

CLI::App* add_model_output(CLI::App* cmd, PlanOptions& o) {
  cmd->add_option("-m,--model", o.model_path, "GGUF model the plan is for")->required();
  cmd->add_option("-o,--output", o.output, "Plan file to write (JSON)")->required();
  return cmd;
}

}  // namespace

void register_plan(CLI::App& app) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* plan = app.add_subcommand("plan", "Show sparse-attention plans or make baseline ones");
  plan->require_subcommand(1);

  CLI::App* show_cmd =
      plan->add_subcommand("show", "Spans per head and densities per length of a plan");
  show_cmd->add_option("plan", o->plan_path, "Plan file (JSON)")->required();
  show_cmd->add_option("-m,--model", o->model_path, "Check the plan against this GGUF model");
  show_cmd->add_option("--lengths", o->lengths, "Input lengths to evaluate")->delimiter(',');
  show_cmd->add_flag("--json", o->json, "Print JSON instead of a table");
  show_cmd->callback([o] { show(*o); });

  CLI::App* uniform = add_model_output(
      plan->add_subcommand("uniform", "StreamingLLM: every head the same window + sinks"), *o);
  uniform->add_option("--window", o->window, "Window (span) in tokens")->required();
  uniform->add_option("--sinks", o->sinks, "Initial sink tokens every head keeps");
  uniform->callback(
      [o] { save(uniform_plan(model_identity(o->model_path), o->window, o->sinks), o->output); });

  CLI::App* dense = add_model_output(
      plan->add_subcommand("dense", "Dense attention as a plan (every span = N)"), *o);
  dense->callback([o] { save(dense_plan(model_identity(o->model_path)), o->output); });

  CLI::App* import = add_model_output(
      plan->add_subcommand("import", "Convert a reference {\"alphas\",\"betas\"} plan"), *o);
  import->add_option("reference", o->plan_path, "Reference-format JSON")->required();
  import->add_option("--sinks", o->sinks, "Sink tokens (the reference format does not store them)");
  import
      ->add_option(
          "--gqa", o->gqa,
          "Per-query-head rules under GQA: reject, or widest (max alpha, max beta per group)")
      ->check(CLI::IsMember({"reject", "widest"}));
  import->callback([o] {
    GqaFold fold = o->gqa == "widest" ? GqaFold::kWidest : GqaFold::kReject;
  save(import_reference_plan(o->plan_path, model_identity(o->model_path), fold, o->sinks),
       o->output);
});
}  // namespace moa::cli

}  // namespace moa::cli
