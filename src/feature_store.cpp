#include "autoguide/feature_store.hpp"

#include <filesystem>

#include "autoguide/error.hpp"
#include "npy.hpp"

namespace fs = std::filesystem;

namespace autoguide {

FeatureStore::FeatureStore(std::string spill_dir, int64_t memory_budget)
    : dir_(std::move(spill_dir)), budget_(memory_budget) {}

void FeatureStore::put(const std::string& key, const torch::Tensor& features) {
  const torch::Tensor f = features.to(torch::kCPU, torch::kFloat32).contiguous();
  auto old = entries_.find(key);
  if (old != entries_.end() && old->second.features.defined()) in_memory_ -= old->second.features.nbytes();
  const auto bytes = static_cast<int64_t>(f.nbytes());
  Entry e;
  if (in_memory_ + bytes <= budget_) {
    e.features = f;
    in_memory_ += bytes;
  } else {
    fs::create_directories(dir_);
    e.file = (fs::path(dir_) / (key + ".npy")).string();
    write_npy(e.file, f);
  }
  entries_[key] = std::move(e);
}

torch::Tensor FeatureStore::get(const std::string& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) throw UsageError("no features kept under '" + key + "'");
  return it->second.features.defined() ? it->second.features : read_npy(it->second.file);
}

std::string FeatureStore::file(const std::string& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? "" : it->second.file;
}

}  // namespace autoguide
