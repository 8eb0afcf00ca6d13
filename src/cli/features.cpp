#include "features.hpp"

#include <filesystem>

#include "autoguide/error.hpp"
#include "npy.hpp"
#include "rank_stats.hpp"
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

void StreamFeatures::add(const torch::Tensor& images, int64_t first) {
  torch::Tensor f = detector_(images);
  check_feature_dim(detector_, f, dim_, from_);
  kept_.push_back(f.to(torch::kCPU, torch::kFloat32));
  for (int64_t i = 0; i < f.size(0); ++i) positions_.push_back(first + i);
}

torch::Tensor StreamFeatures::finish(Group* group, int64_t total) const {
  const torch::Tensor mine = kept_.empty() ? torch::empty({0, dim_}) : torch::cat(kept_);
  return gather_in_order(group, mine, positions_, total);
}

SetFeatures measure_set(Detector& detector, const ImageSet& images, const Measuring& how, const Ranks& ranks) {
  const bool keep_features = how.keep_features;
  if (images.size() < 2)
    throw UsageError("'" + images.path() + "' holds " + std::to_string(images.size()) +
                     " image; feature statistics need at least 2");
  StatsAccumulator acc;
  std::vector<torch::Tensor> kept;
  std::vector<int64_t> positions;
  ProgressLine line(how.show_progress && ranks.root());
  auto draw = [&] {
    const double done = ranks.images_done(static_cast<double>(acc.count()));
    line.update(done / images.size(), done,
                "features " + std::to_string(static_cast<int64_t>(done)) + "/" + std::to_string(images.size()));
  };
  extract_features(detector, images, how.batch, ranks.shard(), [&](const torch::Tensor& f, const IndexRange& range) {
    check_feature_dim(detector, f, how.expected_dim, how.expected_from);
    acc.add(f);
    if (keep_features) {
      kept.push_back(f.to(torch::kCPU, torch::kFloat32));
      for (int64_t i = range.begin; i < range.end; ++i) positions.push_back(i);
    }
    draw();
    ranks.check();
  });
  ranks.barrier(draw);
  line.finish();
  // A rank whose share was empty learns D from blank images of the set's shape.
  const auto& shape = images.image_shape();
  const int64_t dim = detector.dim() > 0 ? detector.dim()
                                         : detector(torch::zeros({2, shape[0], shape[1], shape[2]}, torch::kUInt8)).size(1);
  SetFeatures out{merge_stats(ranks.get(), acc, dim).finish(), torch::Tensor()};
  if (keep_features) {
    const torch::Tensor mine = kept.empty() ? torch::empty({0, dim}) : torch::cat(kept);
    out.features = gather_in_order(ranks.get(), mine, positions, images.size());
  }
  return out;
}

bool is_features_file(const std::string& path) {
  std::error_code ec;
  return !std::filesystem::is_directory(path, ec) && std::filesystem::exists(path, ec) &&
         read_npy_header(path).shape.size() == 2;
}

SetFeatures read_features(const std::string& path) {
  torch::Tensor f = read_npy(path);
  if (!f.is_floating_point()) throw UsageError("features in '" + path + "' must be float32 or float64");
  if (!torch::isfinite(f).all().item<bool>()) throw UsageError("features in '" + path + "' hold NaN or infinite values");
  if (f.size(0) < 2)
    throw UsageError("'" + path + "' holds the features of " + std::to_string(f.size(0)) +
                     " image; at least 2 are needed");
  return {feature_stats(f), f.to(torch::kFloat32)};
}

}  // namespace autoguide::cli
