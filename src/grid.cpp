#include "autoguide/grid.hpp"

#include <algorithm>
#include <cmath>

#include "text.hpp"

namespace autoguide {

namespace {

constexpr uint8_t kMargin = 32;       // dark grey: white text stands out, black tiles stay distinguishable
constexpr Rgb kLabel = {255, 255, 255};

int pad(int scale) { return 3 * scale; }

}  // namespace

torch::Tensor make_grid(const torch::Tensor& images, int cols) {
  TORCH_CHECK(images.dim() == 4 && images.size(0) > 0, "make_grid expects [N,C,H,W] with N > 0");
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  if (cols <= 0) cols = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
  const int64_t rows = (n + cols - 1) / cols;
  auto padded = torch::zeros({rows * cols, c, h, w}, images.options());
  padded.slice(0, 0, n).copy_(images);
  // [rows, cols, C, H, W] -> [C, rows, H, cols, W] -> [C, rows*H, cols*W]
  return padded.view({rows, cols, c, h, w}).permute({2, 0, 3, 1, 4}).reshape({c, rows * h, cols * w});
}

int label_scale(int64_t tile_height) { return tile_height >= 64 ? 2 : 1; }

GridMargins label_margins(const GridLabels& labels, int64_t tile_height) {
  const int s = label_scale(tile_height);
  GridMargins m;
  for (const auto& l : labels.rows) m.left = std::max(m.left, text_width(l, s) + 2 * pad(s));
  if (!labels.columns.empty()) m.top = text_height(s) + 2 * pad(s);
  if (!labels.rows.empty() && !labels.columns.empty())
    m.left = std::max(m.left, text_width(labels.corner, s) + 2 * pad(s));
  return m;
}

torch::Tensor make_labelled_grid(const torch::Tensor& images, int cols, const GridLabels& labels) {
  torch::Tensor tiles = make_grid(images.to(torch::kCPU), cols);
  const int64_t h = images.size(2), w = images.size(3);
  const int64_t rows = tiles.size(1) / h, ncols = tiles.size(2) / w;
  TORCH_CHECK(labels.rows.empty() || static_cast<int64_t>(labels.rows.size()) == rows,
              "make_labelled_grid: ", labels.rows.size(), " row labels for ", rows, " rows");
  TORCH_CHECK(labels.columns.empty() || static_cast<int64_t>(labels.columns.size()) == ncols,
              "make_labelled_grid: ", labels.columns.size(), " column labels for ", ncols, " columns");
  const int s = label_scale(h);
  const GridMargins m = label_margins(labels, h);
  auto out = torch::full({tiles.size(0), m.top + tiles.size(1), m.left + tiles.size(2)}, kMargin, torch::kUInt8);
  out.narrow(1, m.top, tiles.size(1)).narrow(2, m.left, tiles.size(2)).copy_(tiles);
  const int text_y = (static_cast<int>(h) - text_height(s)) / 2;
  for (int64_t r = 0; r < static_cast<int64_t>(labels.rows.size()); ++r) {
    auto cell = out.narrow(1, m.top + r * h, h).narrow(2, 0, m.left);
    draw_text(cell, pad(s), text_y, labels.rows[r], kLabel, s);
  }
  for (int64_t c = 0; c < static_cast<int64_t>(labels.columns.size()); ++c) {
    auto cell = out.narrow(1, 0, m.top).narrow(2, m.left + c * w, w);
    const int x = std::max(0, (static_cast<int>(w) - text_width(labels.columns[c], s)) / 2);
    draw_text(cell, x, pad(s), labels.columns[c], kLabel, s);
  }
  if (m.top > 0 && m.left > 0) {
    auto cell = out.narrow(1, 0, m.top).narrow(2, 0, m.left);
    draw_text(cell, pad(s), pad(s), labels.corner, kLabel, s);
  }
  return out;
}

}  // namespace autoguide
