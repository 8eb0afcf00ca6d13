// The features of every point a tune has measured, per feature space, on the seeds it has so far (rank 0). Kept
// in OUT/points/KEY.SPACE.npy (SPACE: the space's name), so that a resumed run, or a run of the same nets with
// another objective (--reuse), takes them back instead of sampling again.
#pragma once
#include <torch/types.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace autoguide::cli {

class PointStore {
 public:
  PointStore(std::filesystem::path dir, std::vector<std::string> spaces) : dir_(std::move(dir)), spaces_(std::move(spaces)) {}

  // Seeds a point has (0 for one never measured).
  int64_t have(const std::string& key) const;
  // float32 [have, D] in seed order.
  const torch::Tensor& get(const std::string& key, size_t space) const { return features_.at(key)[space]; }
  // Adds the features of the point's next seeds in every space, and saves the point.
  void append(const std::string& key, const std::vector<torch::Tensor>& more);
  // Takes the points saved in `dir` (this store's own, or another run's) that have every space of this store,
  // each space of the same length; where one is longer than this store's, it replaces it. Returns how many.
  size_t load(const std::filesystem::path& dir);

 private:
  void save(const std::string& key) const;

  std::filesystem::path dir_;
  std::vector<std::string> spaces_;
  std::map<std::string, std::vector<torch::Tensor>> features_;
};

}  // namespace autoguide::cli
