// Building the rule-choice MILP for CBC and reading its answer back (see rule_milp.h). The
// solution is rounded and checked in integers against every row, so a plan never exceeds its
// budget by a solver tolerance.
#include "optimize/rule_milp.h"

#include <coin/Cbc_C_Interface.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "util/error.h"

namespace moa {
namespace {

struct CbcDeleter {
  void operator()(Cbc_Model* m) const { Cbc_deleteModel(m); }
};
using CbcModel = std::unique_ptr<Cbc_Model, CbcDeleter>;

// Rows are sparse: one column list and one coefficient list per row.
struct Row {
  std::vector<int> cols;
  std::vector<double> coefs;
  void add(int64_t col, double coef) {
    cols.push_back(static_cast<int>(col));
    coefs.push_back(coef);
  }
};

void add_row(Cbc_Model* m, const Row& row, char sense, double rhs) {
  Cbc_addRow(m, "", static_cast<int>(row.cols.size()), row.cols.data(), row.coefs.data(), sense,
             rhs);
}

double scale_of(std::span<const double> loss) {
  const double top = loss.empty() ? 0.0 : *std::max_element(loss.begin(), loss.end());
  return top > 0.0 ? top : 1.0;
}

// x[h][r] and, with a rule limit, y[l][r] after them.
CbcModel build_model(const AssignmentProblem& p, std::span<const double> loss,
                     std::span<const ObjectiveBound> boxes) {
  CbcModel m(Cbc_newModel());
  const int64_t heads = p.heads(), rules = p.n_rules;
  const double scale = scale_of(loss);
  for (int64_t i = 0; i < heads * rules; ++i) {
    Cbc_addCol(m.get(), "", 0.0, 1.0, loss[static_cast<size_t>(i)] / scale, 1, 0, nullptr, nullptr);
  }
  const int64_t y0 = heads * rules;
  if (p.max_rules_per_layer > 0) {
    for (int64_t i = 0; i < p.n_layer * rules; ++i)
      Cbc_addCol(m.get(), "", 0.0, 1.0, 0.0, 1, 0, nullptr, nullptr);
  }
  for (int64_t h = 0; h < heads; ++h) {
    Row one_hot;
    for (int64_t r = 0; r < rules; ++r) one_hot.add(h * rules + r, 1.0);
    add_row(m.get(), one_hot, 'E', 1.0);
  }
  for (const DensityRow& d : p.densities) {
    Row keys;
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t r = 0; r < rules; ++r)
        keys.add(h * rules + r, static_cast<double>(d.kept[static_cast<size_t>(r)]));
    }
    add_row(m.get(), keys, 'L', static_cast<double>(d.max_keys(heads)));
    if (p.min_density_ratio > 0.0)
      add_row(m.get(), keys, 'G', static_cast<double>(d.min_keys(heads, p.min_density_ratio)));
  }
  if (p.max_rules_per_layer > 0) {
    for (int64_t l = 0; l < p.n_layer; ++l) {
      Row used;
      for (int64_t r = 0; r < rules; ++r) {
        used.add(y0 + l * rules + r, 1.0);
        for (int64_t kv = 0; kv < p.n_head_kv; ++kv) {
          Row link;  // x[h][r] <= y[l][r]
          link.add((l * p.n_head_kv + kv) * rules + r, 1.0);
          link.add(y0 + l * rules + r, -1.0);
          add_row(m.get(), link, 'L', 0.0);
        }
      }
      add_row(m.get(), used, 'L', static_cast<double>(p.max_rules_per_layer));
    }
  }
  for (const ObjectiveBound& b : boxes) {
    const std::vector<double>& box_loss = p.losses.at(b.objective);
    const double s = scale_of(box_loss);
    Row row;
    for (int64_t i = 0; i < heads * rules; ++i) {
      if (box_loss[static_cast<size_t>(i)] != 0.0) row.add(i, box_loss[static_cast<size_t>(i)] / s);
    }
    add_row(m.get(), row, 'L', b.upper / s + 1e-9);
  }
  return m;
}

// Rounds CBC's columns to one rule per head and checks every row exactly.
std::vector<int64_t> read_rules(const AssignmentProblem& p, const double* x) {
  std::vector<int64_t> rule_of_head(static_cast<size_t>(p.heads()), -1);
  for (int64_t h = 0; h < p.heads(); ++h) {
    for (int64_t r = 0; r < p.n_rules; ++r) {
      if (x[h * p.n_rules + r] > 0.5) rule_of_head[static_cast<size_t>(h)] = r;
    }
    if (rule_of_head[static_cast<size_t>(h)] < 0)
      fail("CBC returned no rule for KV head {}: the solution is not integral", h);
  }
  for (const DensityRow& d : p.densities) {
    int64_t keys = 0;
    for (int64_t r : rule_of_head) keys += d.kept[static_cast<size_t>(r)];
    if (keys > d.max_keys(p.heads()) ||
        (p.min_density_ratio > 0.0 && keys < d.min_keys(p.heads(), p.min_density_ratio))) {
      fail("CBC's solution keeps {} keys at length {}, outside the budget: a solver fault", keys,
           d.length);
    }
  }
  return rule_of_head;
}

// An upper-bound row sum_h coef[h * rules + rule_of_head[h]] <= rhs: a density row or a box, as
// the pruning and the greedy start see them.
struct UpperRow {
  std::vector<double> coef;  // [head * rules + rule]
  double rhs = 0.0;
};

std::vector<UpperRow> upper_rows(const AssignmentProblem& p,
                                 std::span<const ObjectiveBound> boxes) {
  const int64_t heads = p.heads(), rules = p.n_rules;
  std::vector<UpperRow> rows;
  for (const DensityRow& d : p.densities) {
    UpperRow row{std::vector<double>(static_cast<size_t>(heads * rules)),
                 static_cast<double>(d.max_keys(heads))};
    for (int64_t i = 0; i < heads * rules; ++i)
      row.coef[static_cast<size_t>(i)] =
          static_cast<double>(d.kept[static_cast<size_t>(i % rules)]);
    rows.push_back(std::move(row));
  }
  for (const ObjectiveBound& b : boxes) {
    const double s = scale_of(p.losses.at(b.objective));
    UpperRow row{p.losses.at(b.objective), b.upper / s + 1e-9};
    for (double& c : row.coef) c /= s;
    rows.push_back(std::move(row));
  }
  return rows;
}

// Per head, the rules another rule of that head beats or ties on the objective and on every
// row (ties keep the lowest index): dropping them leaves the optimum unchanged.
std::vector<char> dominated_rules(const AssignmentProblem& p, std::span<const double> loss,
                                  const std::vector<UpperRow>& rows) {
  const int64_t heads = p.heads(), rules = p.n_rules;
  std::vector<char> dropped(static_cast<size_t>(heads * rules), 0);
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t r = 0; r < rules; ++r) {
      const auto i = static_cast<size_t>(h * rules + r);
      for (int64_t other = 0; other < rules && !dropped[i]; ++other) {
        if (other == r) continue;
        const auto j = static_cast<size_t>(h * rules + other);
        bool no_worse = loss[j] <= loss[i], better = loss[j] < loss[i];
        for (const UpperRow& row : rows) {
          no_worse = no_worse && row.coef[j] <= row.coef[i];
          better = better || row.coef[j] < row.coef[i];
        }
        dropped[i] = no_worse && (better || other < r);
      }
    }
  }
  return dropped;
}

// A feasible start: each head's rule minimising loss + lambda * (its share of every row), the
// least lambda that meets every row found by bisection, then single-head switches that lower
// the loss most while staying feasible. Empty when no lambda meets the rows.
std::vector<int64_t> greedy_start(const AssignmentProblem& p, std::span<const double> loss,
                                  const std::vector<UpperRow>& rows,
                                  const std::vector<char>& dropped) {
  const int64_t heads = p.heads(), rules = p.n_rules;
  const double scale = scale_of(loss);
  std::vector<double> weight(static_cast<size_t>(heads * rules), 0.0);
  for (const UpperRow& row : rows) {
    for (size_t i = 0; i < weight.size(); ++i) weight[i] += row.coef[i] / std::max(row.rhs, 1e-12);
  }
  auto pick = [&](double lambda) {
    std::vector<int64_t> rule_of_head(static_cast<size_t>(heads), -1);
    for (int64_t h = 0; h < heads; ++h) {
      double best = 0.0;
      for (int64_t r = 0; r < rules; ++r) {
        const auto i = static_cast<size_t>(h * rules + r);
        const double cost = loss[i] / scale + lambda * weight[i];
        if (!dropped[i] && (rule_of_head[static_cast<size_t>(h)] < 0 || cost < best)) {
          best = cost;
          rule_of_head[static_cast<size_t>(h)] = r;
        }
      }
    }
    return rule_of_head;
  };
  auto usage = [&](const std::vector<int64_t>& rule_of_head) {
    std::vector<double> used(rows.size(), 0.0);
    for (size_t k = 0; k < rows.size(); ++k) {
      for (int64_t h = 0; h < heads; ++h)
        used[k] +=
            rows[k].coef[static_cast<size_t>(h * rules + rule_of_head[static_cast<size_t>(h)])];
    }
    return used;
  };
  auto feasible = [&](const std::vector<int64_t>& rule_of_head) {
    const std::vector<double> used = usage(rule_of_head);
    for (size_t k = 0; k < rows.size(); ++k) {
      if (used[k] > rows[k].rhs) return false;
    }
    return true;
  };
  double lo = 0.0, hi = 1.0;
  if (!feasible(pick(lo))) {
    while (!feasible(pick(hi))) {
      hi *= 4.0;
      if (hi > 1e12) return {};
    }
    for (int i = 0; i < 50; ++i) {
      const double mid = 0.5 * (lo + hi);
      (feasible(pick(mid)) ? hi : lo) = mid;
    }
    lo = hi;
  }
  std::vector<int64_t> rule_of_head = pick(lo);
  std::vector<double> used = usage(rule_of_head);
  for (int64_t pass = 0; pass < heads * rules; ++pass) {
    double best_gain = 0.0;
    int64_t best_h = -1, best_r = -1;
    for (int64_t h = 0; h < heads; ++h) {
      const auto cur = static_cast<size_t>(h * rules + rule_of_head[static_cast<size_t>(h)]);
      for (int64_t r = 0; r < rules; ++r) {
        const auto i = static_cast<size_t>(h * rules + r);
        if (dropped[i] || loss[cur] - loss[i] <= best_gain) continue;
        bool fits = true;
        for (size_t k = 0; k < rows.size() && fits; ++k)
          fits = used[k] - rows[k].coef[cur] + rows[k].coef[i] <= rows[k].rhs;
        if (fits) {
          best_gain = loss[cur] - loss[i];
          best_h = h;
          best_r = r;
        }
      }
    }
    if (best_h < 0) break;
    const auto cur =
        static_cast<size_t>(best_h * rules + rule_of_head[static_cast<size_t>(best_h)]);
    const auto next = static_cast<size_t>(best_h * rules + best_r);
    for (size_t k = 0; k < rows.size(); ++k) used[k] += rows[k].coef[next] - rows[k].coef[cur];
    rule_of_head[static_cast<size_t>(best_h)] = best_r;
  }
  return rule_of_head;
}

// Pruning and the greedy start, where they are safe: neither a lower density bound nor a rule
// limit (the greedy ignores both, and pruning could break either).
void tune_model(Cbc_Model* m, const AssignmentProblem& p, std::span<const double> loss,
                std::span<const ObjectiveBound> boxes, const MilpSettings& settings) {
  if (p.min_density_ratio > 0.0 || p.max_rules_per_layer > 0) return;
  if (!settings.warm_start && !settings.prune_dominated) return;
  const std::vector<UpperRow> rows = upper_rows(p, boxes);
  std::vector<char> dropped(static_cast<size_t>(p.heads() * p.n_rules), 0);
  if (settings.prune_dominated) {
    dropped = dominated_rules(p, loss, rows);
    for (size_t i = 0; i < dropped.size(); ++i) {
      if (dropped[i]) Cbc_setColUpper(m, static_cast<int>(i), 0.0);
    }
  }
  if (!settings.warm_start) return;
  const std::vector<int64_t> start = greedy_start(p, loss, rows, dropped);
  if (start.empty()) return;
  std::vector<int> cols(dropped.size());
  std::vector<double> values(dropped.size(), 0.0);
  for (size_t i = 0; i < cols.size(); ++i) cols[i] = static_cast<int>(i);
  for (int64_t h = 0; h < p.heads(); ++h)
    values[static_cast<size_t>(h * p.n_rules + start[static_cast<size_t>(h)])] = 1.0;
  Cbc_setMIPStartI(m, static_cast<int>(cols.size()), cols.data(), values.data());
}

}  // namespace

std::optional<Assignment> solve_assignment(const AssignmentProblem& p, size_t objective,
                                           std::span<const ObjectiveBound> boxes,
                                           const MilpSettings& settings) {
  if (p.n_rules < 1) fail("no candidate rules: the MILP has nothing to choose from");
  if (!(settings.time_limit_s > 0.0))
    fail("time limit {} s: expected a positive number", settings.time_limit_s);
  if (!(settings.gap >= 0.0 && settings.gap < 1.0))
    fail("gap {}: expected a fraction in [0, 1)", settings.gap);
  // The objective's profiled loss plus the projected one, per head and rule: what every part of
  // the solve minimises.
  const std::vector<double> loss = p.cost(objective);
  CbcModel m = build_model(p, loss, boxes);
  tune_model(m.get(), p, loss, boxes, settings);
  Cbc_setLogLevel(m.get(), 0);
  Cbc_setParameter(m.get(), "log", "0");
  // CBC's preprocessing (probing the one-hot rows) took most of a solve: a 20-head stories260K
  // front at 12 sinks went from 45 s to 0.9 s without it, same plans (docs/optimizer.md).
  Cbc_setParameter(m.get(), "preprocess", "off");
  Cbc_setMaximumSeconds(m.get(), settings.time_limit_s);
  Cbc_setAllowableFractionGap(m.get(), settings.gap);
  Cbc_setAllowableGap(m.get(), 1e-10);
  Cbc_solve(m.get());
  if (Cbc_isProvenInfeasible(m.get())) return std::nullopt;
  const double* x = Cbc_bestSolution(m.get());
  if (x == nullptr) {
    if (Cbc_isSecondsLimitReached(m.get())) {
      fail("CBC found no feasible plan within the time limit of {} s: raise the time limit",
           settings.time_limit_s);
    }
    if (Cbc_secondaryStatus(m.get()) == 1) return std::nullopt;  // relaxation infeasible
    fail("CBC stopped without a feasible plan (status {}, secondary status {})",
         Cbc_status(m.get()), Cbc_secondaryStatus(m.get()));
  }
  Assignment a;
  a.rule_of_head = read_rules(p, x);
  a.objectives = p.objectives(a.rule_of_head);
  a.projected_loss = p.projected(a.rule_of_head);
  a.optimal = Cbc_isProvenOptimal(m.get()) != 0;
  const double value = Cbc_getObjValue(m.get()), bound = Cbc_getBestPossibleObjValue(m.get());
  a.gap = a.optimal && value - bound <= 0.0
              ? 0.0
              : std::max(0.0, value - bound) / std::max(std::abs(value), 1e-12);
  return a;
}

Assignment solve_min_loss(const AssignmentProblem& p, size_t objective,
                          const MilpSettings& settings) {
  const std::string why = explain_infeasible(p);
  if (!why.empty()) fail("{}", why);
  std::optional<Assignment> a = solve_assignment(p, objective, {}, settings);
  if (!a) {
    std::string lengths;
    for (const DensityRow& d : p.densities)
      lengths += fmt::format("{}{} at {}", lengths.empty() ? "" : ", ", d.budget, d.length);
    fail("the density budgets ({}) cannot all hold at once with the candidate rules{}", lengths,
         p.max_rules_per_layer > 0 ? fmt::format(" and {} rules per layer", p.max_rules_per_layer)
                                   : std::string());
  }
  return *a;
}

}  // namespace moa
