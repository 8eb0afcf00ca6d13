// Shared by `ref` and `fid`: run a detector over an image set with progress, into statistics and (optionally)
// the raw features.
#pragma once
#include <torch/types.h>

#include <array>
#include <string>
#include <vector>

#include "autoguide/detector.hpp"
#include "autoguide/image_set.hpp"
#include "autoguide/metrics.hpp"
#include "ranks.hpp"

namespace autoguide::cli {

struct SetFeatures {
  FeatureStats stats;      // of the whole set, on every rank
  torch::Tensor features;  // float32 [N,D] on the CPU in the set's order when kept (rank 0 only), else undefined
};

// How a set is measured: images per detector call, whether the raw features are kept and progress shown,
// and the feature count the statistics must have (expected_dim > 0: fail on the first batch, not after the
// whole set, naming `expected_from`).
struct Measuring {
  int64_t batch = 64;
  bool keep_features = false, show_progress = false;
  int64_t expected_dim = 0;
  std::string expected_from;
};

// Each rank measures its share of the set (EDM2's rank split of its batches); the statistics are merged
// across ranks and kept features gathered on rank 0, which alone shows progress (of all ranks). Throws
// UsageError below 2 images.
SetFeatures measure_set(Detector& detector, const ImageSet& images, const Measuring& how, const Ranks& ranks);

// Throws UsageError naming `expected_from` when features [N,D] have D != expected_dim (> 0).
void check_feature_dim(const Detector& detector, const torch::Tensor& features, int64_t expected_dim,
                       const std::string& expected_from);

// Runs the detector on two blank images of `image_shape` (C,H,W) and checks D: a detector unfit for the
// images to come fails before any of them are sampled or written.
void probe_detector(Detector& detector, const std::array<int64_t, 3>& image_shape, int64_t expected_dim,
                    const std::string& expected_from);

// The features of images that arrive batch by batch (straight from the sampler, not from files), each batch
// checked like measure_set's against the reference's feature count, kept for the run's intervals.
class StreamFeatures {
 public:
  StreamFeatures(Detector& detector, int64_t expected_dim, std::string expected_from)
      : detector_(detector), dim_(expected_dim), from_(std::move(expected_from)) {}
  void add(const torch::Tensor& images, int64_t first);  // uint8 [n,C,H,W], positions first.. in the seed list
  // Every rank's features, float32 [total,D] in seed-list order, on rank 0 (undefined elsewhere; `group` null:
  // this process's).
  torch::Tensor finish(Group* group, int64_t total) const;

 private:
  Detector& detector_;
  int64_t dim_;
  std::string from_;
  std::vector<torch::Tensor> kept_;
  std::vector<int64_t> positions_;
};

// True for a 2-D .npy, i.e. features [N,D] rather than images.
bool is_features_file(const std::string& path);

// A features .npy [N,D] (float32 or float64, finite, N >= 2): its statistics and the features as float32.
SetFeatures read_features(const std::string& path);

}  // namespace autoguide::cli
