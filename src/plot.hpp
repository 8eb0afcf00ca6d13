// Line charts drawn straight into pixels (no plotting library), e.g. FD against the guidance weight.
#pragma once
#include <torch/types.h>

#include <string>
#include <vector>

namespace autoguide {

struct Series {
  std::string name;
  std::vector<double> x, y;  // same length; points with a non-finite y are left out
  std::vector<double> lo, hi;  // empty, or an interval per point drawn as an error bar (non-finite: none)
};

struct PlotText {
  std::string title, x_label, y_label;
};

// uint8 [3,height,width] on white: axes with "nice" ticks (1, 2 or 5 times a power of ten) and tick labels,
// one coloured polyline with square markers per series (and error bars where
// the series has intervals), and a legend naming them. Text is drawn like grid
// labels, at scale 2. Throws UsageError when there is no finite point or the size is below 240x160.
torch::Tensor line_plot(const std::vector<Series>& series, const PlotText& text, int width = 800, int height = 520);

}  // namespace autoguide
