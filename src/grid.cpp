#include "autoguide/grid.hpp"

#include <cmath>

namespace autoguide {

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

}  // namespace autoguide
