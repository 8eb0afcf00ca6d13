#include "autoguide/decoder.hpp"

namespace autoguide {

torch::Tensor decode_rgb(const torch::Tensor& x) {
  return (x.to(torch::kFloat32) * 127.5 + 128).clip(0, 255).to(torch::kUInt8).to(torch::kCPU);
}

}  // namespace autoguide
