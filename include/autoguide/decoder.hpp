// Network outputs -> uint8 pixels.
#pragma once
#include <torch/torch.h>

namespace autoguide {

// EDM2's StandardRGBEncoder.decode: x*127.5 + 128, clipped to [0,255], truncated (= rounding of 127.5(x+1)).
// x [N,C,H,W] float -> uint8 [N,C,H,W] on the CPU.
torch::Tensor decode_rgb(const torch::Tensor& x);

}  // namespace autoguide
