// The features of a run's settings, kept until the run's intervals and paired differences are computed: in
// memory while they fit a budget, spilled to .npy files beside the results beyond it (50,000 Inception features
// are 410 MB per setting and space; a sweep has tens of settings).
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <string>

namespace autoguide {

class FeatureStore {
 public:
  // `spill_dir` is created on the first spill; `memory_budget` bytes are kept in memory in all.
  FeatureStore(std::string spill_dir, int64_t memory_budget);

  // Keeps float32 CPU [N,D] features under `key` (a file-name-safe name, unique in the run); replaces an earlier
  // entry of that key.
  void put(const std::string& key, const torch::Tensor& features);
  // The features put under `key` (read back from their file when spilled). Throws UsageError for an unknown key.
  torch::Tensor get(const std::string& key) const;
  // The file the key was spilled to, or empty while it is in memory.
  std::string file(const std::string& key) const;
  int64_t bytes_in_memory() const { return in_memory_; }

 private:
  struct Entry {
    torch::Tensor features;  // undefined when spilled
    std::string file;
  };
  std::string dir_;
  int64_t budget_, in_memory_ = 0;
  std::map<std::string, Entry> entries_;
};

}  // namespace autoguide
