// Many images as one picture.
#pragma once
#include <torch/torch.h>

namespace autoguide {

// images: uint8 [N,C,H,W] -> uint8 [C, rows*H, cols*W], row-major in the given order; empty cells are black.
// cols <= 0 picks a near-square layout.
torch::Tensor make_grid(const torch::Tensor& images, int cols);

}  // namespace autoguide
