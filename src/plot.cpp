#include "plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "autoguide/error.hpp"
#include "text.hpp"

namespace autoguide {

namespace {

constexpr int kScale = 2;
constexpr Rgb kInk = {0, 0, 0}, kGridLine = {225, 225, 225}, kWhite = {255, 255, 255};
// Matplotlib's tab10, so curves look as in the papers' figures.
constexpr Rgb kPalette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
                            {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};

const Rgb& color(size_t k) { return kPalette[k % (sizeof kPalette / sizeof kPalette[0])]; }

struct Axis {
  double lo, hi, step;
  int decimals;
  // From indices rather than by repeated addition, so the last tick is not lost to rounding.
  std::vector<double> ticks() const {
    std::vector<double> t;
    const long n = std::lround((hi - lo) / step);
    for (long i = 0; i <= n; ++i) t.push_back(lo + static_cast<double>(i) * step);
    return t;
  }
};

// About five ticks at a step of 1, 2 or 5 times a power of ten; the axis ends on ticks.
Axis nice_axis(double lo, double hi) {
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {
    const double half = std::max(std::abs(lo) * 0.1, 0.5);
    lo -= half, hi += half;
  }
  const double raw = (hi - lo) / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * mag;
  for (double f : {1.0, 2.0, 5.0})
    if (raw <= f * mag) {
      step = f * mag;
      break;
    }
  Axis a{std::floor(lo / step + 1e-9) * step, std::ceil(hi / step - 1e-9) * step, step, 0};
  a.decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  return a;
}

std::string tick_label(double v, int decimals) {
  char s[64];
  std::snprintf(s, sizeof s, "%.*f", decimals, std::abs(v) < 1e-12 ? 0.0 : v);
  return s;
}

// A line of the given thickness, as squares stamped along it (enough for charts; no anti-aliasing).
void draw_line(torch::Tensor& img, double x0, double y0, double x1, double y1, const Rgb& c, int thick) {
  const int n = static_cast<int>(std::ceil(std::max(std::abs(x1 - x0), std::abs(y1 - y0)))) + 1;
  for (int i = 0; i <= n; ++i) {
    const double t = static_cast<double>(i) / n;
    const int x = static_cast<int>(std::lround(x0 + t * (x1 - x0))) - thick / 2;
    const int y = static_cast<int>(std::lround(y0 + t * (y1 - y0))) - thick / 2;
    fill_rect(img, x, y, x + thick, y + thick, c);
  }
}

}  // namespace

namespace {

bool bar(const Series& s, size_t i) {
  return i < s.lo.size() && i < s.hi.size() && std::isfinite(s.lo[i]) && std::isfinite(s.hi[i]);
}

}  // namespace

torch::Tensor line_plot(const std::vector<Series>& series, const PlotText& text, int width, int height) {
  if (width < 240 || height < 160) throw UsageError("plots must be at least 240x160 pixels");
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  for (const auto& s : series) {
    TORCH_CHECK(s.x.size() == s.y.size(), "line_plot: series '", s.name, "' has ", s.x.size(), " x and ",
                s.y.size(), " y values");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      xmin = std::min(xmin, s.x[i]), xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, s.y[i]), ymax = std::max(ymax, s.y[i]);
      if (bar(s, i)) ymin = std::min(ymin, s.lo[i]), ymax = std::max(ymax, s.hi[i]);
    }
  }
  if (!std::isfinite(xmin)) throw UsageError("nothing to plot: no finite values");
  const Axis ax = nice_axis(xmin, xmax), ay = nice_axis(ymin, ymax);

  auto img = torch::full({3, height, width}, 255, torch::kUInt8);
  const int th = text_height(kScale), gap = 4 * kScale;
  int widest_y = 0;
  for (double v : ay.ticks())
    widest_y = std::max(widest_y, text_width(tick_label(v, ay.decimals), kScale));
  // Legend to the right of the plot area, so that no curve runs under it.
  int legend_w = 0;
  const bool legend = series.size() > 1 || (series.size() == 1 && !series[0].name.empty());
  if (legend)
    for (const auto& s : series) legend_w = std::max(legend_w, text_width(s.name, kScale) + 6 * gap);
  // Plot area: room on the left for the y tick labels, above for the title and y-axis name, below for the x
  // tick labels and x-axis name.
  const int left = widest_y + 4 * gap, right = width - 3 * gap - legend_w;
  const int top = 3 * th + 3 * gap, bottom = height - (2 * th + 4 * gap);
  if (right - left < 60) throw UsageError("plot too narrow for its labels and legend");
  auto px = [&](double x) { return left + (x - ax.lo) / (ax.hi - ax.lo) * (right - left); };
  auto py = [&](double y) { return bottom - (y - ay.lo) / (ay.hi - ay.lo) * (bottom - top); };

  for (double v : ax.ticks()) {
    const int x = static_cast<int>(std::lround(px(v)));
    fill_rect(img, x, top, x + 1, bottom, kGridLine);
    fill_rect(img, x - 1, bottom, x + 1, bottom + gap, kInk);
    const std::string l = tick_label(v, ax.decimals);
    draw_text(img, x - text_width(l, kScale) / 2, bottom + 2 * gap - kScale, l, kInk, kScale);
  }
  for (double v : ay.ticks()) {
    const int y = static_cast<int>(std::lround(py(v)));
    fill_rect(img, left, y, right, y + 1, kGridLine);
    fill_rect(img, left - gap, y - 1, left, y + 1, kInk);
    const std::string l = tick_label(v, ay.decimals);
    draw_text(img, left - 2 * gap - text_width(l, kScale), y - th / 2, l, kInk, kScale);
  }
  fill_rect(img, left - 1, top, left + 1, bottom + 1, kInk);
  fill_rect(img, left - 1, bottom - 1, right, bottom + 1, kInk);
  draw_text(img, (left + right - text_width(text.x_label, kScale)) / 2, height - th - gap, text.x_label, kInk, kScale);
  draw_text(img, gap, 2 * th + gap, text.y_label, kInk, kScale);
  draw_text(img, (width - text_width(text.title, kScale)) / 2, gap, text.title, kInk, kScale);

  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    double prev_x = std::nan(""), prev_y = std::nan("");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      const double x = px(s.x[i]), y = py(s.y[i]);
      if (!std::isnan(prev_x)) draw_line(img, prev_x, prev_y, x, y, color(k), kScale);
      const int mx = static_cast<int>(std::lround(x)), my = static_cast<int>(std::lround(y));
      if (bar(s, i)) {  // the interval: a vertical bar with caps
        const int y0 = static_cast<int>(std::lround(py(s.hi[i]))), y1 = static_cast<int>(std::lround(py(s.lo[i])));
        fill_rect(img, mx - kScale / 2, y0, mx - kScale / 2 + kScale, y1 + 1, color(k));
        fill_rect(img, mx - 3 * kScale, y0, mx + 3 * kScale + 1, y0 + kScale, color(k));
        fill_rect(img, mx - 3 * kScale, y1 + 1 - kScale, mx + 3 * kScale + 1, y1 + 1, color(k));
      }
      fill_rect(img, mx - 2 * kScale, my - 2 * kScale, mx + 2 * kScale + 1, my + 2 * kScale + 1, color(k));
      prev_x = x, prev_y = y;
    }
  }
  int ly = top;
  for (size_t k = 0; legend && k < series.size(); ++k) {
    const int lx = right + 3 * gap;
    fill_rect(img, lx, ly + th / 2 - kScale, lx + 3 * gap, ly + th / 2 + kScale, color(k));
    draw_text(img, lx + 4 * gap, ly, series[k].name, kInk, kScale);
    ly += th + gap;
  }
  return img;
}

}  // namespace autoguide
