// SVG figures for `moa report` (see svg.h).
#include "eval/svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace moa::svg {
namespace {

constexpr double kWidth = 640, kHeight = 400;
constexpr double kLeft = 70, kRight = 170, kTop = 40, kBottom = 60;
constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                   "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string open_svg(double width, double height, const std::string& title) {
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{3}</text>\n",
      width, height, width / 2, escape(title));
}

std::string text(double x, double y, const std::string& s, const char* anchor = "middle",
                 const std::string& extra = "") {
  return fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\"{}>{}</text>\n", x, y,
                     anchor, extra, escape(s));
}

std::string tick_label(double v) {
  if (std::fabs(v) >= 1000 && std::fmod(v, 1024) == 0) return fmt::format("{}K", v / 1024);
  return fmt::format("{:g}", v);
}

// Five "nice" ticks covering [lo, hi].
std::vector<double> linear_ticks(double lo, double hi) {
  const double raw = (hi - lo) / 5.0;
  const double mag = std::pow(10.0, std::floor(std::log10(raw > 0 ? raw : 1.0)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push_back(t);
  return ticks;
}

std::string heat_color(double t) {  // white -> blue
  t = std::clamp(t, 0.0, 1.0);
  const int r = static_cast<int>(247 - t * (247 - 8));
  const int g = static_cast<int>(251 - t * (251 - 69));
  const int b = static_cast<int>(255 - t * (255 - 148));
  return fmt::format("#{:02x}{:02x}{:02x}", r, g, b);
}

}  // namespace

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string line_chart(const LineChart& c) {
  double x0 = std::numeric_limits<double>::max(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const Series& s : c.series) {
    for (auto [x, y] : s.points) {
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  }
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (c.fixed_unit_y) y0 = 0, y1 = 1;
  if (y0 == y1) y0 -= 0.5, y1 += 0.5;
  auto fx = [&](double x) { return c.log_x ? std::log2(x) : x; };
  double fx0 = fx(x0), fx1 = fx(x1);
  if (fx0 == fx1) fx0 -= 1, fx1 += 1;
  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  auto px = [&](double x) { return kLeft + (fx(x) - fx0) / (fx1 - fx0) * pw; };
  auto py = [&](double y) { return kTop + ph - (y - y0) / (y1 - y0) * ph; };
  std::string out = open_svg(kWidth, kHeight, c.title);
  out += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n", kLeft,
      kTop, pw, ph);
  for (double t : linear_ticks(y0, y1)) {
    out += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n",
                       kLeft, kLeft + pw, py(t), py(t));
    out += text(kLeft - 6, py(t) + 4, tick_label(t), "end");
  }
  std::vector<double> xs;
  for (const Series& s : c.series) {
    for (auto p : s.points) xs.push_back(p.first);
  }
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
  if (xs.size() > 8 || !c.log_x) xs = c.log_x ? xs : linear_ticks(x0, x1);
  for (double t : xs) out += text(px(t), kTop + ph + 16, tick_label(t));
  out += text(kLeft + pw / 2, kHeight - 18, c.x_label);
  out += text(18, kTop + ph / 2, c.y_label, "middle",
              fmt::format(" transform=\"rotate(-90 18 {:.1f})\"", kTop + ph / 2));
  for (size_t i = 0; i < c.series.size(); ++i) {
    const Series& s = c.series[i];
    const char* color = kColors[i % std::size(kColors)];
    std::string pts;
    for (auto [x, y] : s.points) pts += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
    if (c.lines && s.points.size() > 1) {
      out += fmt::format(
          "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n", pts, color);
    }
    for (auto [x, y] : s.points) {
      out += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\"/>\n", px(x),
                         py(y), color);
    }
    const double ly = kTop + 10 + 18 * static_cast<double>(i);
    out += fmt::format("<rect x=\"{}\" y=\"{:.1f}\" width=\"12\" height=\"12\" fill=\"{}\"/>\n",
                       kWidth - kRight + 12, ly - 10, color);
    out += text(kWidth - kRight + 30, ly, s.name.substr(0, 22), "start");
  }
  return out + "</svg>\n";
}

std::string heat_map(const HeatMap& m) {
  const double cell_w = std::clamp(520.0 / std::max<size_t>(1, m.cols.size()), 14.0, 80.0);
  const double cell_h = std::clamp(320.0 / std::max<size_t>(1, m.rows.size()), 12.0, 40.0);
  const double left = 110, top = 40;
  const double width = left + cell_w * static_cast<double>(m.cols.size()) + 30;
  const double height = top + cell_h * static_cast<double>(m.rows.size()) + 60;
  std::string out = open_svg(std::max(width, 320.0), height, m.title);
  const bool labels = cell_w >= 34 && cell_h >= 16;
  for (size_t r = 0; r < m.rows.size(); ++r) {
    const double y = top + cell_h * static_cast<double>(r);
    out += text(left - 6, y + cell_h / 2 + 4, m.rows[r], "end");
    for (size_t col = 0; col < m.cols.size(); ++col) {
      const double x = left + cell_w * static_cast<double>(col);
      const double v = m.values[r][col];
      const bool empty = std::isnan(v);
      const double t = empty ? 0.0 : (v - m.min) / (m.max - m.min > 0 ? m.max - m.min : 1.0);
      out += fmt::format(
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\" "
          "stroke=\"#fff\"><title>{}</title></rect>\n",
          x, y, cell_w, cell_h, empty ? "#cfcfcf" : heat_color(t),
          escape(fmt::format("{} / {}: {}", m.rows[r], m.cols[col],
                             empty ? std::string("no cases") : fmt::format("{:.3f}", v))));
      if (labels && !empty) {
        std::string label = fmt::format("{:.{}f}", v, m.decimals);
        if (!m.notes.empty() && !m.notes[r][col].empty()) label += " " + m.notes[r][col];
        out += text(x + cell_w / 2, y + cell_h / 2 + 4, label, "middle",
                    t > 0.55 ? " fill=\"white\" font-size=\"10\"" : " font-size=\"10\"");
      }
    }
  }
  const double bottom = top + cell_h * static_cast<double>(m.rows.size());
  for (size_t col = 0; col < m.cols.size(); ++col) {
    if (m.cols.size() > 24 && col % 4 != 0) continue;
    out += text(left + cell_w * (static_cast<double>(col) + 0.5), bottom + 14, m.cols[col]);
  }
  out += text(left + cell_w * static_cast<double>(m.cols.size()) / 2, bottom + 36, m.x_label);
  out += text(12, top + (bottom - top) / 2, m.y_label, "middle",
              fmt::format(" transform=\"rotate(-90 12 {:.1f})\"", top + (bottom - top) / 2));
  return out + "</svg>\n";
}

std::string bar_chart(const BarChart& c) {
  const double vmax = c.values.empty() ? 1.0 : *std::max_element(c.values.begin(), c.values.end());
  const double top_value = vmax > 0 ? vmax * 1.1 : 1.0;
  const double pw = kWidth - kLeft - 30, ph = kHeight - kTop - kBottom - 60;
  std::string out = open_svg(kWidth, kHeight, c.title);
  for (double t : linear_ticks(0, top_value)) {
    const double y = kTop + ph - t / top_value * ph;
    out += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n",
                       kLeft, kLeft + pw, y, y);
    out += text(kLeft - 6, y + 4, fmt::format("{:g}", t), "end");
  }
  const double slot = pw / static_cast<double>(std::max<size_t>(1, c.values.size()));
  for (size_t i = 0; i < c.values.size(); ++i) {
    const double h = c.values[i] / top_value * ph;
    const double x = kLeft + slot * static_cast<double>(i) + slot * 0.15;
    out += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>\n", x,
        kTop + ph - h, slot * 0.7, h, kColors[i % std::size(kColors)]);
    const double v = c.values[i];
    out += text(x + slot * 0.35, kTop + ph - h - 4,
                v >= 100 ? fmt::format("{:.0f}", v) : fmt::format("{:.3g}", v), "middle",
                " font-size=\"10\"");
    // Labels run down-left at 35 degrees so long ones never overlap their neighbours.
    const double lx = x + slot * 0.35, ly = kTop + ph + 12;
    out += text(lx, ly, c.labels[i].substr(0, 28), "end",
                fmt::format(" font-size=\"10\" transform=\"rotate(-35 {:.1f} {:.1f})\"", lx, ly));
  }
  out += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#444\"/>\n", kLeft,
                     kLeft + pw, kTop + ph, kTop + ph);
  out += text(18, kTop + ph / 2, c.y_label, "middle",
              fmt::format(" transform=\"rotate(-90 18 {:.1f})\"", kTop + ph / 2));
  return out + "</svg>\n";
}

}  // namespace moa::svg
