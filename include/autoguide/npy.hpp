// NumPy .npy files (format 1.0) for raw float32 samples and test fixtures.
#pragma once
#include <torch/torch.h>

#include <string>

namespace autoguide {

// Writes a contiguous little-endian array; float32, float64, int64 or uint8.
std::string encode_npy(const torch::Tensor& t);
void write_npy(const std::string& path, const torch::Tensor& t);

// Reads float32/float64/int64/uint8 C-order arrays; throws UsageError otherwise.
torch::Tensor read_npy(const std::string& path);

}  // namespace autoguide
