// NumPy .npy files (format 1.0) for raw float32 samples and test fixtures.
#pragma once
#include <torch/types.h>

#include <string>
#include <vector>

namespace autoguide {

// Writes a contiguous little-endian array; float32, float64, int64 or uint8.
std::string encode_npy(const torch::Tensor& t);
void write_npy(const std::string& path, const torch::Tensor& t);

// Reads float32/float64/int64/uint8 C-order arrays; throws UsageError otherwise.
torch::Tensor read_npy(const std::string& path);

// The same from bytes already in memory (e.g. an .npz entry); `name` appears in error messages.
torch::Tensor decode_npy(const std::string& bytes, const std::string& name);

// An array's layout without its data, so large files can be read in slices.
struct NpyHeader {
  torch::ScalarType dtype = torch::kFloat32;
  std::vector<int64_t> shape;
  size_t data_offset = 0;  // bytes from the start of the file
};
// The header at the start of `bytes` (which must hold all of it; the data may follow or not). `name` appears
// in error messages. Throws UsageError for anything but a version 1-3 header of a supported dtype in C order.
NpyHeader parse_npy_header(const std::string& bytes, const std::string& name);
// Checks that the file holds exactly the data its header announces.
NpyHeader read_npy_header(const std::string& path);

}  // namespace autoguide
