// Many images as one picture.
#pragma once
#include <torch/types.h>

#include <string>
#include <vector>

namespace autoguide {

// images: uint8 [N,C,H,W] -> uint8 [C, rows*H, cols*W], row-major in the given order; empty cells are black.
// cols <= 0 picks a near-square layout.
torch::Tensor make_grid(const torch::Tensor& images, int cols);

struct GridLabels {
  std::vector<std::string> rows;     // one per grid row, in a left margin; empty: no left margin
  std::vector<std::string> columns;  // one per column, in a top margin; empty: no top margin
  std::string corner;                // the top-left cell, when both margins exist
};

// Text scale for labels beside tiles of this height: 1 (9-pixel lines) below 64 pixels, 2 from there.
int label_scale(int64_t tile_height);

// Label margins, in pixels: the left one fits the widest row label, the top one a line of text.
struct GridMargins {
  int left = 0, top = 0;
};
GridMargins label_margins(const GridLabels& labels, int64_t tile_height);

// make_grid with white labels on dark margins: uint8 [C, top + rows*H, left + cols*W]. The tiles are those of
// make_grid, unchanged; each row label is centred on its row and each column label on its column, clipped to
// its cell (tiles smaller than a line of text clip the descenders).
torch::Tensor make_labelled_grid(const torch::Tensor& images, int cols, const GridLabels& labels);

}  // namespace autoguide
