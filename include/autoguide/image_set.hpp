// The images a metric is computed on, read in batches so that large sets need not fit in memory.
#pragma once
#include <torch/types.h>

#include <array>
#include <string>
#include <vector>

namespace autoguide {

class ImageSet {
 public:
  // `path`: a folder of PNGs (found recursively, sorted by path; other files are ignored) or a .npy of
  // uint8 [N,C,H,W], or of float [N,C,H,W] samples in [-1,1] (decoded as EDM2 does, see decode_rgb).
  // All images must share one shape; for folders this is checked from the PNG headers before any
  // pixels are read. Throws UsageError for an empty set, mixed shapes or an unusable file.
  static ImageSet open(const std::string& path);

  const std::string& path() const { return path_; }
  int64_t size() const { return count_; }
  const std::array<int64_t, 3>& image_shape() const { return shape_; }  // C, H, W
  std::string describe() const;                                         // "N images of CxHxW from PATH"

  // uint8 [count,C,H,W] on the CPU: images start .. start+count-1.
  torch::Tensor load(int64_t start, int64_t count) const;

 private:
  std::string path_;
  std::vector<std::string> files_;  // a PNG folder; empty for a .npy
  torch::ScalarType npy_dtype_ = torch::kUInt8;
  size_t npy_offset_ = 0;
  int64_t count_ = 0;
  std::array<int64_t, 3> shape_{};
};

}  // namespace autoguide
