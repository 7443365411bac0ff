// Plain SVG figures for `moa report`, written directly (no plotting library, no scripts, no
// external resources): line charts, heat-maps and bar charts with axes, ticks and a legend.
// Every figure is a standalone <svg> element that can be saved as a file or inlined in HTML.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace moa::svg {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in order
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  bool log_x = false;
  bool fixed_unit_y = false;  // y axis 0 .. 1 (accuracies)
  bool lines = true;          // false: points only
};
std::string line_chart(const LineChart& chart);

// values[row][col]; NaN cells are drawn empty. Cells show their value and, when given, a note.
struct HeatMap {
  std::string title, x_label, y_label;
  std::vector<std::string> rows, cols;
  std::vector<std::vector<double>> values;
  std::vector<std::vector<std::string>> notes;  // optional, same shape as values
  double min = 0.0, max = 1.0;
  int decimals = 2;
};
std::string heat_map(const HeatMap& map);

struct BarChart {
  std::string title, y_label;
  std::vector<std::string> labels;
  std::vector<double> values;
};
std::string bar_chart(const BarChart& chart);

// Escapes &, <, >, " and ' for text and attribute values.
std::string escape(const std::string& text);

}  // namespace moa::svg
