// Distribution metrics in a detector's feature space: feature statistics, Fréchet distance (FID when the
// detector is Inception-v3, FD_DINOv2 with DINOv2), and improved precision/recall.
#pragma once
#include <torch/types.h>

#include <string>

namespace autoguide {

// Mean and covariance of a feature set, both float64 on the CPU.
struct FeatureStats {
  torch::Tensor mu;        // [D]
  torch::Tensor sigma;     // [D,D], unbiased (divides by N-1)
  int64_t num_images = 0;  // 0 when unknown (stats files from elsewhere)
  int64_t dim() const { return mu.size(0); }
};

// Streams over batches: memory is O(D^2) whatever the number of images. Each batch is centred on its own
// mean and merged with Chan et al.'s update, in float64, so large feature means do not cancel digits away
// (as sum(x x^T) - N mu mu^T would).
class StatsAccumulator {
 public:
  StatsAccumulator() = default;
  // From the moments of n features: their mean [D] and scatter [D,D] (float64), e.g. merged across ranks.
  StatsAccumulator(int64_t n, torch::Tensor mean, torch::Tensor scatter)
      : n_(n), mean_(std::move(mean)), scatter_(std::move(scatter)) {}
  void add(const torch::Tensor& features);  // [n,D], any floating dtype and device
  int64_t count() const { return n_; }
  const torch::Tensor& mean() const { return mean_; }        // undefined before the first features
  const torch::Tensor& scatter() const { return scatter_; }  // sum of (x - mean)(x - mean)^T
  FeatureStats finish() const;  // throws UsageError below 2 images

 private:
  int64_t n_ = 0;
  torch::Tensor mean_, scatter_;  // float64; scatter = sum of (x - mean)(x - mean)^T
};

FeatureStats feature_stats(const torch::Tensor& features);

// ||mu1 - mu2||^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2). The last term is computed without a non-symmetric
// matrix square root: S1 S2 is similar to S1^1/2 S2 S1^1/2, which is symmetric positive semi-definite, so
// tr sqrt(S1 S2) = sum of the square roots of its eigenvalues (from eigh, float64; rounding noise below 0 is
// clamped). Throws UsageError when the dimensions differ.
double frechet_distance(const FeatureStats& a, const FeatureStats& b);

// frechet_distance(a, ·) for many second arguments: a's eigendecomposition is done once (the bootstrap's
// resamples against one reference). frechet_distance(a, b) is FrechetFrom(a)(b), the same arithmetic.
class FrechetFrom {
 public:
  explicit FrechetFrom(const FeatureStats& a);
  double operator()(const FeatureStats& b) const;  // throws UsageError when the dimensions differ
  int64_t dim() const { return mu_.size(0); }

 private:
  torch::Tensor mu_, v_, r_;  // a's mean, eigenvectors and square roots of its eigenvalues (clamped at 0)
  double trace_ = 0;
};

// Improved precision and recall (Kynkäänniemi et al. 2019). Each sample's k-NN ball has the radius of its
// k-th nearest neighbour within its own set (itself excluded). precision = share of `generated` inside some
// ball of `real`; recall = share of `real` inside some ball of `generated`. Features [N,D] of any floating
// dtype; distances in float64 on `real`'s device, in row blocks. Throws UsageError when a set has <= k samples.
struct PrecisionRecall {
  double precision = 0, recall = 0;
};
PrecisionRecall precision_recall(const torch::Tensor& real, const torch::Tensor& generated, int64_t k = 3);

// Stats files are NumPy .npz archives (stored ZIP): mu.npy float64 [D], sigma.npy float64 [D,D],
// num_images.npy int64 scalar. numpy.load(path) reads them; read_stats also accepts any npz with mu and sigma
// (e.g. NVlabs/edm's reference statistics), with num_images optional.
void write_stats(const std::string& path, const FeatureStats& stats);
FeatureStats read_stats(const std::string& path);  // throws UsageError for a missing, damaged or inconsistent file

}  // namespace autoguide
