// A feature detector for metrics: any TorchScript module whose forward maps uint8 [N,C,H,W] images to
// feature vectors [N,D] (e.g. Inception-v3 for FID, DINOv2 for FD_DINOv2; resizing and normalization are
// the module's business). No metadata is required (docs/model_format.md).
#pragma once
#include <torch/script.h>

#include <functional>
#include <string>

#include "autoguide/image_set.hpp"
#include "autoguide/rank_split.hpp"

namespace autoguide {

class Detector {
 public:
  // Throws UsageError when the file is missing or not TorchScript.
  static Detector load(const std::string& path, const torch::Device& device);

  // images: uint8 [N,C,H,W] (any device). Returns float features [N,D] on the detector's device, in the
  // module's own floating dtype. Throws UsageError when the module fails on the images or returns anything
  // but finite [N,D] floats with the same D every time.
  torch::Tensor operator()(const torch::Tensor& images);

  const std::string& path() const { return path_; }
  const torch::Device& device() const { return device_; }
  int64_t dim() const { return dim_; }  // 0 until the first batch

 private:
  Detector(torch::jit::Module module, std::string path, torch::Device device)
      : module_(std::move(module)), path_(std::move(path)), device_(device) {}
  torch::jit::Module module_;
  std::string path_;
  torch::Device device_;
  int64_t dim_ = 0;
};

// Runs the detector over the shard's batches of a set (EDM2's split, at most `batch` images each, see
// rank_split.hpp); `sink` gets each batch's features and its positions in the set.
void extract_features(Detector& detector, const ImageSet& images, int64_t batch, const Shard& shard,
                      const std::function<void(const torch::Tensor& features, const IndexRange& range)>& sink);

}  // namespace autoguide
