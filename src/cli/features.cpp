#include "features.hpp"

#include <filesystem>

#include "autoguide/error.hpp"
#include "autoguide/npy.hpp"
#include "progress.hpp"

namespace autoguide::cli {

void check_feature_dim(const Detector& detector, const torch::Tensor& features, int64_t expected_dim,
                       const std::string& expected_from) {
  if (expected_dim > 0 && features.size(1) != expected_dim)
    throw UsageError("detector '" + detector.path() + "' gives " + std::to_string(features.size(1)) +
                     " features, but " + expected_from + " has " + std::to_string(expected_dim) +
                     "; use the detector the statistics were made with");
}

void probe_detector(Detector& detector, const std::array<int64_t, 3>& image_shape, int64_t expected_dim,
                    const std::string& expected_from) {
  check_feature_dim(detector, detector(torch::zeros({2, image_shape[0], image_shape[1], image_shape[2]}, torch::kUInt8)),
                    expected_dim, expected_from);
}

void StreamStats::add(const torch::Tensor& images) {
  torch::Tensor f = detector_(images);
  check_feature_dim(detector_, f, dim_, from_);
  acc_.add(f);
}

SetFeatures measure_set(Detector& detector, const ImageSet& images, int64_t batch, bool keep_features,
                        bool show_progress, int64_t expected_dim, const std::string& expected_from) {
  if (images.size() < 2)
    throw UsageError("'" + images.path() + "' holds " + std::to_string(images.size()) +
                     " image; feature statistics need at least 2");
  StatsAccumulator acc;
  std::vector<torch::Tensor> kept;
  ProgressLine line(show_progress);
  extract_features(detector, images, batch, [&](const torch::Tensor& f, int64_t done) {
    check_feature_dim(detector, f, expected_dim, expected_from);
    acc.add(f);
    if (keep_features) kept.push_back(f.to(torch::kCPU, torch::kFloat32));
    line.update(double(done) / images.size(), "features " + std::to_string(done) + "/" + std::to_string(images.size()));
  });
  line.finish();
  SetFeatures out{acc.finish(), keep_features ? torch::cat(kept) : torch::Tensor()};
  return out;
}

void check_batch(int64_t batch) {
  if (batch < 1) throw UsageError("--batch must be at least 1, got " + std::to_string(batch));
}

bool is_features_file(const std::string& path) {
  std::error_code ec;
  return !std::filesystem::is_directory(path, ec) && std::filesystem::exists(path, ec) &&
         read_npy_header(path).shape.size() == 2;
}

SetFeatures reference_features(Detector& detector, const std::string& path, int64_t batch, bool show_progress) {
  if (is_features_file(path)) {
    torch::Tensor f = read_npy(path);
    if (!f.is_floating_point()) throw UsageError("features in '" + path + "' must be float32 or float64");
    if (!torch::isfinite(f).all().item<bool>())
      throw UsageError("features in '" + path + "' hold NaN or infinite values");
    if (f.size(0) < 2)
      throw UsageError("'" + path + "' holds the features of " + std::to_string(f.size(0)) +
                       " image; at least 2 are needed");
    return {feature_stats(f), f.to(torch::kFloat32)};
  }
  return measure_set(detector, ImageSet::open(path), batch, true, show_progress);
}

}  // namespace autoguide::cli
