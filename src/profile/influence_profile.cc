// Influence profile file (see influence_profile.h). Payload order: for each length (header
// order), each layer, the head-major [n_head_kv][N] distance sums of |E|, the [n_head_kv] sink
// sums of |E|, then the same two of the signed E (version 2); float64 little-endian (x86-64's
// order, checked at compile time).
#include "profile/influence_profile.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>

#include "plan/plan_io.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/json_fields.h"
#include "util/mapped_file.h"

namespace moa {

static_assert(std::endian::native == std::endian::little, "profile payload is little-endian");

namespace jf = json_fields;
using nlohmann::json;

const ProfiledLength& InfluenceProfile::at_length(int64_t n) const {
  for (const ProfiledLength& l : lengths) {
    if (l.length == n) return l;
  }
  std::string profiled;
  for (const ProfiledLength& l : lengths)
    profiled += (profiled.empty() ? "" : ", ") + std::to_string(l.length);
  fail("length {} was not profiled (profiled: {})", n, profiled);
}

namespace {

double per_sample(const ProfiledLength& l, double sum) {
  return l.samples.empty() ? 0.0 : sum / static_cast<double>(l.samples.size());
}

const kernels::InfluenceHistogram& layer_of(const ProfiledLength& l, int64_t layer) {
  if (layer < 0 || layer >= static_cast<int64_t>(l.layers.size())) {
    fail("profile: layer {} does not exist ({} layers)", layer, l.layers.size());
  }
  return l.layers[static_cast<size_t>(layer)];
}

}  // namespace

double InfluenceProfile::masked_influence(int64_t n, int64_t layer, int64_t kv_head,
                                          int64_t span) const {
  const ProfiledLength& l = at_length(n);
  return per_sample(l, layer_of(l, layer).tail_sum(kv_head, std::max<int64_t>(span, 0)));
}

double InfluenceProfile::total_influence(int64_t n, int64_t layer, int64_t kv_head) const {
  return masked_influence(n, layer, kv_head, 0);
}

double InfluenceProfile::masked_loss_change(int64_t n, int64_t layer, int64_t kv_head,
                                            int64_t span) const {
  const ProfiledLength& l = at_length(n);
  return per_sample(l, layer_of(l, layer).signed_tail_sum(kv_head, std::max<int64_t>(span, 0)));
}

int64_t InfluenceProfile::span_holding(int64_t n, int64_t layer, int64_t kv_head,
                                       double fraction) const {
  const kernels::InfluenceHistogram& h = layer_of(at_length(n), layer);
  const double total = h.tail_sum(kv_head, 0);
  if (!(total > 0.0)) return 0;
  double inside = 0.0;
  for (int64_t d = 0; d < h.max_distance; ++d) {
    inside += h.at(kv_head, d);
    if (inside >= fraction * total) return d + 1;
  }
  return h.max_distance;
}

double InfluenceProfile::sink_influence(int64_t n, int64_t layer, int64_t kv_head) const {
  const ProfiledLength& l = at_length(n);
  return per_sample(l, layer_of(l, layer).sink.at(static_cast<size_t>(kv_head)));
}

InfluenceProfile empty_profile(const ModelIdentity& model, int64_t n_vocab, int64_t sinks,
                               const std::string& calibration, std::vector<int64_t> lengths) {
  std::sort(lengths.begin(), lengths.end());
  lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
  InfluenceProfile p;
  p.model = model;
  p.n_vocab = n_vocab;
  p.sinks = sinks;
  p.calibration = calibration;
  for (int64_t n : lengths) {
    ProfiledLength l;
    l.length = n;
    l.layers.resize(static_cast<size_t>(model.n_layer));
    for (kernels::InfluenceHistogram& h : l.layers) h.reset(model.n_head_kv, n);
    p.lengths.push_back(std::move(l));
  }
  return p;
}

void write_profile(const InfluenceProfile& p, const std::string& path) {
  json header;
  header["format"] = "moa-profile";
  header["version"] = InfluenceProfile::kFormatVersion;
  header["model"] = {{"architecture", p.model.architecture},
                     {"n_layer", p.model.n_layer},
                     {"n_head", p.model.n_head},
                     {"n_head_kv", p.model.n_head_kv},
                     {"n_vocab", p.n_vocab},
                     {"hash", p.model.hash}};
  header["sinks"] = p.sinks;
  header["calibration"] = p.calibration;
  header["backward"] = p.backward;
  header["lengths"] = json::array();
  for (const ProfiledLength& l : p.lengths) {
    header["lengths"].push_back({{"length", l.length}, {"samples", l.samples}});
  }
  write_file_atomically(path, [&](std::ostream& out) {
    out << json_fields::json_text(header) << '\n';
    for (const ProfiledLength& l : p.lengths) {
      for (const kernels::InfluenceHistogram& h : l.layers) {
        for (const std::vector<double>* v :
             {&h.by_distance, &h.sink, &h.signed_by_distance, &h.signed_sink}) {
          out.write(reinterpret_cast<const char*>(v->data()),
                    static_cast<std::streamsize>(v->size() * sizeof(double)));
        }
      }
    }
  });
}

InfluenceProfile read_profile(const std::string& path) {
  const std::string bytes = read_regular_file(path);
  const size_t eol = bytes.find('\n');
  if (eol == std::string::npos) fail("{}: no header line (expected a moa profile)", path);
  const json h = jf::parse(bytes.substr(0, eol), path, "a moa profile header");
  if (jf::string_field(h, "format", path, "") != "moa-profile") {
    fail("{}: format: expected \"moa-profile\"", path);
  }
  const int64_t version = jf::integer_field(h, "version", path, "", 0);
  if (version != InfluenceProfile::kFormatVersion) {
    fail("{}: version: {} is not supported (supported: {})", path, version,
         InfluenceProfile::kFormatVersion);
  }
  constexpr int64_t kMaxLength = int64_t{1} << 24;
  const json& m = jf::member(h, "model", path, "");
  const ModelIdentity model = model_identity_from_json(m, path);
  const int64_t n_vocab = jf::integer_field(m, "n_vocab", path, "model.", 1, int64_t{1} << 31);
  const int64_t sinks = jf::integer_field(h, "sinks", path, "", 0, kMaxLength);
  std::vector<int64_t> lengths;
  std::vector<std::vector<int64_t>> samples;
  const json& entries = jf::array_field(h, "lengths", path, "");
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string where = "lengths[" + std::to_string(i) + "].";
    lengths.push_back(jf::integer_field(entries[i], "length", path, where, 1, kMaxLength));
    samples.push_back(jf::integer_array(entries[i], "samples", path, where, 0, kMaxLength));
    if (i > 0 && lengths[i] <= lengths[i - 1]) {
      fail("{}: {}length: {} is not above the previous length", path, where, lengths[i]);
    }
  }
  InfluenceProfile p =
      empty_profile(model, n_vocab, sinks, jf::string_field(h, "calibration", path, ""), lengths);
  if (h.contains("backward")) {
    p.backward = jf::string_field(h, "backward", path, "");
    if (p.backward != "exact" && p.backward != "q8_0-transposes") {
      fail("{}: backward: \"{}\" (expected \"exact\" or \"q8_0-transposes\")", path, p.backward);
    }
  }
  size_t expected = 0;
  for (const ProfiledLength& l : p.lengths) {
    expected +=
        static_cast<size_t>(2 * model.n_layer * model.n_head_kv * (l.length + 1)) * sizeof(double);
  }
  const size_t payload = bytes.size() - eol - 1;
  if (payload != expected) {
    fail(
        "{}: histogram data: {} bytes, expected {} for the header's lengths and heads (truncated "
        "or corrupt)",
        path, payload, expected);
  }
  const char* at = bytes.data() + eol + 1;
  for (size_t i = 0; i < p.lengths.size(); ++i) {
    p.lengths[i].samples = samples[i];
    for (kernels::InfluenceHistogram& layer : p.lengths[i].layers) {
      layer.samples = static_cast<int64_t>(samples[i].size());
      for (std::vector<double>* v :
           {&layer.by_distance, &layer.sink, &layer.signed_by_distance, &layer.signed_sink}) {
        std::memcpy(v->data(), at, v->size() * sizeof(double));
        at += v->size() * sizeof(double);
        const bool magnitudes = v == &layer.by_distance || v == &layer.sink;
        for (double x : *v) {
          if (!std::isfinite(x) || (magnitudes && x < 0.0)) {
            fail("{}: histogram data of length {}: {} is not a finite{} influence", path,
                 p.lengths[i].length, x, magnitudes ? " non-negative" : "");
          }
        }
      }
    }
  }
  return p;
}

void check_profile_matches(const InfluenceProfile& p, const ModelIdentity& model,
                           const std::string& file) {
  check_identity_matches(p.model, model, file, "profile");
}

}  // namespace moa
